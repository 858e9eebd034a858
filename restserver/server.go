package restserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an HTTP handler that speaks the Upstash Kafka REST API over a
// [Backend]. Make one with [New]; serve it with [Server.Serve] or mount it in
// any http.Server or mux (it implements http.Handler).
//
// A Server is safe for concurrent use. Close (or Shutdown) ends the idle
// expiry janitor and every consumer instance; afterwards every request is
// answered 503. The Backend is not closed.
type Server struct {
	cfg     config
	backend Backend
	auth    *authenticator
	logins  *loginLimiter
	log     *slog.Logger

	closeCtx    context.Context // canceled by Close/Shutdown: ends long polls
	cancelClose context.CancelFunc
	closeOnce   sync.Once
	janitorDone chan struct{}

	mu        sync.Mutex
	instances map[instanceKey]*instance
	// incarnations holds the IncarnationHeader tokens of instance names.
	incarnations map[instanceKey]*incarnation
	closed       bool

	httpMu sync.Mutex

	readyMu  sync.Mutex // one /readyz check of the backend at a time
	readyAt  time.Time  // when readyErr was found
	readyErr error
	httpSrv  *http.Server

	requests  atomic.Uint64
	errors    atomic.Uint64
	produced  atomic.Uint64
	delivered atomic.Uint64
	metrics   *metrics // for /metrics (metrics.go)
}

// Stats are the server's counters since New.
type Stats struct {
	// Requests is the number of HTTP requests received, answered or not
	// yet, including rejected ones; /healthz, /readyz and /metrics are not
	// counted.
	Requests uint64
	// Errors is the number of requests answered with a status of 400 or
	// more.
	Errors uint64
	// Produced is the number of records appended through produce and
	// webhook.
	Produced uint64
	// Delivered is the number of records returned by consume and fetch.
	Delivered uint64
	// Instances is the number of consumer instances alive now.
	Instances int
}

// New returns a Server over b. It fails on a nil backend or an invalid
// option. It starts one goroutine, the idle-instance janitor, which Close
// stops.
func New(b Backend, opts ...Option) (*Server, error) {
	if b == nil {
		return nil, errors.New("restserver: nil backend")
	}
	cfg := defaults()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:         cfg,
		backend:     b,
		auth:        newAuthenticator(cfg.allUsers()),
		logins:      newLoginLimiter(cfg.failedLogins),
		log:         cfg.logger,
		closeCtx:    ctx,
		cancelClose: cancel,
		janitorDone: make(chan struct{}),
		instances:   make(map[instanceKey]*instance),
		metrics:     newMetrics(),

		incarnations: make(map[instanceKey]*incarnation),
	}
	if !s.auth.enabled() {
		s.log.Warn("kafka-rest: no credentials configured, authentication is OFF")
	}
	go s.janitor(janitorInterval(cfg.instanceExpiry))
	return s, nil
}

// Stats returns the server's counters. Benchmarks use Requests to report
// HTTP requests per call.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.instances)
	s.mu.Unlock()
	return Stats{
		Requests:  s.requests.Load(),
		Errors:    s.errors.Load(),
		Produced:  s.produced.Load(),
		Delivered: s.delivered.Load(),
		Instances: n,
	}
}

// Serve accepts HTTP connections on ln until Shutdown or Close, with the
// read, write and idle timeouts of [WithTimeouts] (by default fit for long
// polls of up to the max timeout), request headers of at most 1 MiB, and
// at most [WithMaxConnections] connections open: at the limit a new
// connection closes the longest idle one that never carried an
// authenticated request (else the longest idle one), or, when none is
// idle, is answered 503 with Retry-After. A request that fails
// authentication is answered with Connection: close. It
// returns nil after Shutdown/Close, and fails if the server is already
// serving or closed: called after Shutdown or Close (which may come first
// when a stop races the start), with an error wrapping
// http.ErrServerClosed. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.httpMu.Lock()
	if s.closing() {
		s.httpMu.Unlock()
		ln.Close()
		return fmt.Errorf("restserver: Serve called after Shutdown or Close: %w", http.ErrServerClosed)
	}
	if s.httpSrv != nil {
		s.httpMu.Unlock()
		ln.Close()
		return errors.New("restserver: Serve called twice")
	}
	to := s.cfg.timeouts.withDefaults(s.cfg.maxTimeout)
	limiter := newConnLimiter(s.cfg.maxConns)
	base := context.WithValue(s.closeCtx, servedBy{}, s)
	hs := &http.Server{
		// Every request's context ends at Close or Shutdown.
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnState:         limiter.connState,
		ConnContext:       limiter.connContext,
		Handler:           s,
		ReadHeaderTimeout: to.ReadHeader,
		ReadTimeout:       to.Read,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.httpSrv = hs
	s.httpMu.Unlock()
	if err := hs.Serve(limitListener{ln, limiter}); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops a Serve gracefully: long polls in flight end at once with
// what they have ([] if nothing), new connections are refused, and it waits
// for the requests in flight until ctx ends (then it closes the remaining
// connections). It then closes the server as Close does. Idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancelClose()
	s.httpMu.Lock()
	hs := s.httpSrv
	s.httpMu.Unlock()
	var err error
	if hs != nil {
		if err = hs.Shutdown(ctx); err != nil {
			_ = hs.Close()
		}
	}
	return errors.Join(err, s.Close())
}

// Close ends long polls in flight, stops the janitor and closes every
// consumer instance (committing its positions first when auto-commit is on,
// as a Kafka consumer does on close). A Serve in progress stops at once.
// Requests after Close get 503. The Backend is left open. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancelClose()
		<-s.janitorDone
		s.mu.Lock()
		s.closed = true
		insts := make([]*instance, 0, len(s.instances))
		for k, in := range s.instances {
			insts = append(insts, in)
			delete(s.instances, k)
		}
		s.mu.Unlock()
		s.closeInstances(insts, "server closed")
		s.httpMu.Lock()
		hs := s.httpSrv
		s.httpMu.Unlock()
		if hs != nil {
			_ = hs.Close()
		}
	})
	return nil
}

func (s *Server) closing() bool { return s.closeCtx.Err() != nil }

// endpoint is one route of §2.
type endpoint struct {
	methods string // allowed methods, as in an Allow header
	handle  func(s *Server, w http.ResponseWriter, r *http.Request, seg []string) error
	webhook bool // takes ?user=&pass= credentials
	group   bool // seg[1] and seg[2] are a group and an instance name
}

type routeKey struct {
	name string
	segs int
}

var routes = map[routeKey]endpoint{
	{"produce", 1}:         {methods: "GET, POST", handle: (*Server).handleProduce},
	{"produce", 2}:         {methods: "GET, POST", handle: (*Server).handleProduce},
	{"produce", 3}:         {methods: "GET", handle: (*Server).handleProducePath},
	{"webhook", 1}:         {methods: "GET, POST", handle: (*Server).handleWebhook, webhook: true},
	{"fetch", 1}:           {methods: "GET, POST", handle: (*Server).handleFetch},
	{"consume", 3}:         {methods: "GET, POST", handle: (*Server).handleConsume, group: true},
	{"consume", 4}:         {methods: "GET", handle: (*Server).handleConsume, group: true},
	{"commit", 3}:          {methods: "GET, POST", handle: (*Server).handleCommit, group: true},
	{"committed", 3}:       {methods: "GET, POST", handle: (*Server).handleCommitted, group: true},
	{"delete-consumer", 3}: {methods: "POST, DELETE", handle: (*Server).handleDeleteConsumer, group: true},
	{"topics", 1}:          {methods: "GET", handle: (*Server).handleTopics},
	{"consumers", 1}:       {methods: "GET", handle: (*Server).handleConsumers},
	{"offsets", 2}:         {methods: "GET, POST", handle: (*Server).handleOffsets},
}

// splitPath splits the escaped path into unescaped segments, tolerating one
// trailing slash (/fetch/ is /fetch).
func splitPath(r *http.Request) ([]string, error) {
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	seg := strings.Split(p, "/")
	for i, raw := range seg {
		v, err := url.PathUnescape(raw)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("malformed path segment %q", raw))
		}
		seg[i] = v
	}
	return seg, nil
}

// ServeHTTP answers one request of the Upstash Kafka REST API. Every answer
// is JSON; errors are {"error": "...", "status": N}. Content-Type of the
// request is ignored: bodies are always read as JSON (raw bytes for
// /webhook).
//
// /healthz, /readyz and /metrics are answered too (health.go); they are
// not counted in Stats.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := statusWriters.Get().(*statusWriter)
	sw.ResponseWriter = w
	defer func() {
		s.observe(r, sw, start)
		*sw = statusWriter{}
		statusWriters.Put(sw)
	}()
	if s.serveOps(sw, r) {
		return
	}
	s.requests.Add(1)
	err := s.serve(sw, r)
	if err != nil {
		s.writeError(sw, r, err)
	}
	if sw.status >= 400 {
		s.errors.Add(1)
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		// The path only: the query may carry webhook credentials.
		s.log.Debug("kafka-rest: request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration", time.Since(start))
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	seg, perr := splitPath(r)
	var ep endpoint
	found := false
	if len(seg) > 0 {
		ep, found = routes[routeKey{seg[0], len(seg)}]
	}
	who, err := s.authenticate(r, found && ep.webhook)
	if err != nil {
		// A client without valid credentials keeps no idle connection.
		w.Header().Set("Connection", "close")
		return err
	}
	markAuthenticated(r)
	r = withPrincipal(r, who)
	if s.closing() {
		return &httpError{status: http.StatusServiceUnavailable, msg: "server is shutting down"}
	}
	if perr != nil {
		return perr
	}
	if !found {
		if len(seg) > 0 && seg[0] == "schema-registry" {
			return errorf(http.StatusNotFound, "the schema registry is not supported by this server")
		}
		return errorf(http.StatusNotFound, "unknown route %s %s", r.Method, r.URL.Path)
	}
	if !methodAllowed(ep.methods, r.Method) {
		return &httpError{status: http.StatusMethodNotAllowed, allow: ep.methods,
			msg: fmt.Sprintf("method %s is not allowed on /%s; use %s", r.Method, seg[0], ep.methods)}
	}
	for i, v := range seg[1:] {
		if v == "" {
			return badRequest(fmt.Sprintf("path segment %d of /%s is empty", i+2, seg[0]))
		}
	}
	if ep.group {
		if err := s.checkNames(seg[1], seg[2]); err != nil {
			return err
		}
	}
	return ep.handle(s, w, r, seg)
}

// authenticate checks r's credentials, unless its client address has
// failed too often lately (429 with Retry-After; see
// [WithFailedLoginLimit]).
func (s *Server) authenticate(r *http.Request, queryForm bool) (*principal, error) {
	if !s.auth.enabled() {
		return nil, nil
	}
	c := credentialsOf(r, queryForm)
	if c.form == credNone {
		// No credentials at all: 401, and nothing counted, so that
		// anonymous requests (a health check, a careless client sharing the
		// address) cannot lock real users out.
		return s.auth.check(r, c, queryForm)
	}
	// Keyed by address and claimed user: wrong guesses for one user do not
	// lock the others out from the same address (a proxy, a NAT).
	key := clientKey(r) + "\x00" + c.user
	if wait := s.logins.blocked(key); wait > 0 {
		return nil, tooManyLogins(wait)
	}
	who, err := s.auth.check(r, c, queryForm)
	if err != nil {
		s.logins.failed(key)
	}
	return who, err
}

// checkNames refuses a group or instance name over the name length limit.
func (s *Server) checkNames(group, instance string) error {
	for _, n := range [...]struct{ what, name string }{{"group", group}, {"instance", instance}} {
		if len(n.name) > s.cfg.maxNameLength {
			return badRequest(fmt.Sprintf("the %s name is %d bytes long; at most %d are allowed (the name length limit)",
				n.what, len(n.name), s.cfg.maxNameLength))
		}
	}
	return nil
}

func methodAllowed(allowed, m string) bool {
	for a := range strings.SplitSeq(allowed, ", ") {
		if a == m {
			return true
		}
	}
	return false
}

// readBody reads the whole request body, up to the body limit.
// maxUpfrontBody is the most a request body's buffer is sized for before
// its bytes arrive.
const maxUpfrontBody = 64 << 10

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.maxBodyBytes {
		return nil, &http.MaxBytesError{Limit: s.cfg.maxBodyBytes}
	}
	if r.ContentLength == 0 {
		return nil, nil
	}
	if r.ContentLength > 0 && r.ContentLength <= maxUpfrontBody {
		// The common case: a declared length within the limit, read into
		// a buffer of its size at once (net/http's body ends at the
		// declared length; a shorter body is an error).
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, bodyError(err)
		}
		closeRead(r)
		return buf, nil
	}
	if r.ContentLength > 0 {
		buf, err := readDeclared(make([]byte, 0, maxUpfrontBody), r)
		if err != nil {
			return nil, err
		}
		return buf, nil
	}
	rd := http.MaxBytesReader(w, r.Body, s.cfg.maxBodyBytes)
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rd); err != nil {
		return nil, bodyError(err)
	}
	return buf.Bytes(), nil
}

// readPooledBody is readBody into a buffer of bufPool, for a body that is
// decoded into copies of its bytes (produce, consume, fetch): the caller
// puts the buffer back with putBuf once decoded.
func (s *Server) readPooledBody(w http.ResponseWriter, r *http.Request) (*[]byte, error) {
	if n := r.ContentLength; n > 0 && n <= min(maxUpfrontBody, s.cfg.maxBodyBytes) {
		b := getBuf()
		*b = slices.Grow((*b)[:0], int(n))[:n]
		if _, err := io.ReadFull(r.Body, *b); err != nil {
			putBuf(b)
			return nil, bodyError(err)
		}
		closeRead(r)
		return b, nil
	}
	if n := r.ContentLength; n > maxUpfrontBody && n <= s.cfg.maxBodyBytes {
		// A batch: read into a pooled buffer too, grown as bytes arrive
		// (see readDeclared), so that big bodies are not allocated, and
		// cleared, anew for each request.
		b := getBuf()
		buf, err := readDeclared((*b)[:0], r)
		if err != nil {
			putBuf(b)
			return nil, err
		}
		*b = buf
		return b, nil
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return &body, nil
}

// readDeclared reads r's body, of declared length r.ContentLength > 0,
// appending to buf. buf grows as bytes arrive, doubling up to the declared
// length and no further, from at least maxUpfrontBody: a client that
// declares 16 MiB and sends nothing must not make the server reserve
// 16 MiB. (A pooled buf may already hold more: it is not reserved for this
// request.)
func readDeclared(buf []byte, r *http.Request) ([]byte, error) {
	n := r.ContentLength
	if cap(buf)-len(buf) < maxUpfrontBody {
		buf = slices.Grow(buf, int(min(maxUpfrontBody, n)))
	}
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(cap(buf)), n-int64(len(buf)))))
		}
		got, err := r.Body.Read(buf[len(buf):min(int64(cap(buf)), n)])
		buf = buf[:len(buf)+got]
		if err == io.EOF && int64(len(buf)) < n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return nil, bodyError(err)
		}
	}
	closeRead(r)
	return buf, nil
}

// closeRead closes r's body once all of its declared length is read:
// net/http, finding a body open when the answer begins, reads on to its
// end through an io.LimitReader of its own (an allocation per request)
// before it may keep the connection.
func closeRead(r *http.Request) { _ = r.Body.Close() }

// bodyError is the answer to a failed read of a request body.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// Serve's read timeout passed: a slow or stalled client.
		return &httpError{status: http.StatusRequestTimeout, msg: "request body not received within the read timeout", err: err}
	}
	return badRequest("reading request body: " + err.Error())
}

// requestContext is r's context, also ended by Close/Shutdown, with a
// timeout. The requests of Serve need no more than the timeout: their
// contexts derive from the server's (see servedBy).
func (s *Server) requestContext(r *http.Request, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	if s.served(r) {
		return ctx, cancel
	}
	stop := context.AfterFunc(s.closeCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// servedBy is the key of the context value that marks the requests of
// Serve: their contexts derive from closeCtx, so Close and Shutdown end
// them.
type servedBy struct{}

// served reports whether r came through s's Serve (not through another
// http.Server that mounts s as a handler).
func (s *Server) served(r *http.Request) bool {
	by, _ := r.Context().Value(servedBy{}).(*Server)
	return by == s
}

// observe counts an answered request in the metrics and writes its
// access log line.
func (s *Server) observe(r *http.Request, sw *statusWriter, start time.Time) {
	took := time.Since(start)
	s.metrics.request(r.URL.Path, sw.status, took)
	if s.cfg.accessLog != nil {
		s.logAccess(r, sw, took)
	}
}

// statusWriters holds the statusWriters of requests done.
var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter records the status and the body bytes written. ServeHTTP
// takes one from statusWriters and puts it back when the request is done.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// discardBody drains a body the endpoint does not read, so keep-alive
// connections are reused.
func discardBody(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
}
