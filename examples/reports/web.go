package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Server one: the web app. POST /reports sends a report request with
// rpc.Client.Send and answers at once; the worker's progress and completion
// notices come back through Client.OnNotice (a durable consumer group, so a
// notice that arrives while the app is down is handled after it restarts)
// and are kept in the app's SQLite status store, from which the status
// endpoints and the live event stream read.

// webName is server one's rpc name: its notice topic is web.notices, read
// by the consumer group "web".
const webName = "web"

//go:embed static
var staticFiles embed.FS

// Defaults of webConfig.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultWriteTimeout      = 30 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultMaxStreams        = 1000
	// defaultStreamKeepAlive is how often an idle event stream sends a
	// comment line, so proxies do not cut it.
	defaultStreamKeepAlive = 15 * time.Second
)

// webApp is server one. It is an http.Handler, safe for concurrent use.
// Close ends the live streams, stops reading notices and closes the store.
type webApp struct {
	client *rpc.Client
	store  *statusStore
	hub    *hub
	log    *slog.Logger
	mux    *http.ServeMux

	cfg     webConfig
	dir     string       // the reports folder, absolute: the only files served
	streams atomic.Int64 // live event streams
	// issuing is held (shared) by each start from Send until the report
	// is recorded; a notice for an unknown id waits for those in flight
	// before it is judged never issued.
	issuing sync.RWMutex

	closing     chan struct{} // closed by endStreams: live streams end
	janitorDone chan struct{} // closed when the janitor ends; nil without one
	endOnce     sync.Once
	closeOnce   sync.Once
}

// webConfig is what the web app needs besides its transport.
type webConfig struct {
	DBPath string // the status store
	Dir    string // the reports folder: the web app serves files from it only

	// The HTTP server's timeouts (see http.Server). WriteTimeout bounds
	// each write of a live event stream rather than the whole stream.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxStreams caps the live event streams; one more gets 503.
	MaxStreams int
	// StreamKeepAlive is how often an idle event stream sends a comment.
	StreamKeepAlive time.Duration
	// KeepFor is how long a report is kept after it finished: then its
	// file and its records are deleted (see retention.go). Zero keeps
	// reports forever.
	KeepFor time.Duration
	// SweepEvery is how often old reports are looked for (default:
	// KeepFor/10, at most an hour).
	SweepEvery time.Duration
	// Instance is the member id of the notice group (rpc.WithNoticeInstance):
	// a restarted web app with the same id takes its notice partitions back
	// at once. "" is a fresh id per start.
	Instance string
}

// withDefaults fills in the zero fields.
func (wc webConfig) withDefaults() webConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&wc.ReadHeaderTimeout, defaultReadHeaderTimeout)
	def(&wc.ReadTimeout, defaultReadTimeout)
	def(&wc.WriteTimeout, defaultWriteTimeout)
	def(&wc.IdleTimeout, defaultIdleTimeout)
	def(&wc.StreamKeepAlive, defaultStreamKeepAlive)
	if wc.KeepFor > 0 && wc.SweepEvery <= 0 {
		wc.SweepEvery = min(wc.KeepFor/10, time.Hour)
	}
	if wc.MaxStreams <= 0 {
		wc.MaxStreams = defaultMaxStreams
	}
	return wc
}

// newHTTPServer is the HTTP server of app, with its timeouts. Its shutdown
// ends the live streams.
func newHTTPServer(app *webApp, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           app,
		ReadHeaderTimeout: app.cfg.ReadHeaderTimeout,
		ReadTimeout:       app.cfg.ReadTimeout,
		WriteTimeout:      app.cfg.WriteTimeout,
		IdleTimeout:       app.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(app.endStreams)
	return srv
}

// newWebApp opens the status store at wc.DBPath and starts reading notices
// on t: the notices that arrived while no web app ran are handled first.
func newWebApp(ctx context.Context, t transport.Transport, wc webConfig, log *slog.Logger) (*webApp, error) {
	wc = wc.withDefaults()
	dir, err := filepath.Abs(wc.Dir)
	if err != nil {
		return nil, err
	}
	store, err := openStatusStore(ctx, wc.DBPath)
	if err != nil {
		return nil, err
	}
	client, err := rpc.NewClient(t, rpc.WithName(webName), rpc.WithLogger(log), rpc.WithNoticeInstance(wc.Instance))
	if err != nil {
		store.Close()
		return nil, err
	}
	a := &webApp{client: client, store: store, hub: newHub(), log: log, mux: http.NewServeMux(), cfg: wc, dir: dir, closing: make(chan struct{})}
	a.mux.HandleFunc("GET /{$}", a.handleIndex)
	a.mux.HandleFunc("POST /reports", a.handleStart)
	a.mux.HandleFunc("GET /reports/{id}", a.handleStatus)
	a.mux.HandleFunc("GET /reports/{id}/events", a.handleEvents)
	a.mux.HandleFunc("GET /reports/{id}/download", a.handleDownload)
	if err := client.OnNotice(a.onNotice); err != nil {
		client.Close()
		store.Close()
		return nil, err
	}
	if wc.KeepFor > 0 {
		a.janitorDone = make(chan struct{})
		go a.janitor()
	}
	return a, nil
}

func (a *webApp) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// endStreams ends the live event streams (they would keep an HTTP server's
// graceful shutdown waiting). It is idempotent.
func (a *webApp) endStreams() {
	a.endOnce.Do(func() { close(a.closing) })
}

// Close ends the live streams and the janitor, stops the notice reader (a notice being
// handled is finished first) and closes the store. It is idempotent; the
// app must not serve requests afterwards.
func (a *webApp) Close() error {
	var err error
	a.closeOnce.Do(func() {
		a.endStreams()
		if a.janitorDone != nil {
			<-a.janitorDone
		}
		err = errors.Join(a.client.Close(), a.store.Close())
	})
	return err
}

// start sends a report request and records it as pending.
func (a *webApp) start(ctx context.Context, req ReportRequest) (string, error) {
	a.issuing.RLock()
	defer a.issuing.RUnlock()
	id, err := a.client.Send(ctx, reportsTopic, req)
	if err != nil {
		return "", err
	}
	if err := a.store.create(ctx, id, req.From, req.To); err != nil {
		return id, fmt.Errorf("report %s was sent but not recorded: %w", id, err)
	}
	a.hub.notify(id)
	return id, nil
}

// onNotice stores a progress or completion notice and wakes the report's
// live streams. A notice for a report this app never issued is logged and
// dropped (nil: committed), and a completion notice naming a file outside
// the reports folder fails its report: anyone who can produce on the notice
// topic can forge one.
func (a *webApp) onNotice(ctx context.Context, r *rpc.Reply) error {
	n := a.noticeOf(r)
	changed, err := a.store.apply(ctx, n)
	if errors.Is(err, errNotFound) {
		// The app may be between Send and create for this id: wait for the
		// starts in flight, then look again.
		a.issuing.Lock()
		//lint:ignore SA2001 an empty critical section is the point: a barrier
		a.issuing.Unlock()
		changed, err = a.store.apply(ctx, n)
	}
	if errors.Is(err, errNotFound) {
		a.log.Warn("notice for a report this app did not issue: ignored", "report_id", n.ReportID, "notice_id", n.NoticeID, "from", r.From)
		return nil
	}
	if err != nil {
		return fmt.Errorf("store notice of report %s: %w", n.ReportID, err)
	}
	if changed {
		a.hub.notify(n.ReportID)
		a.log.Debug("report notice", "report_id", n.ReportID, "state", n.State)
	}
	return nil
}

// noticeOf turns a notice into the status change it brings.
func (a *webApp) noticeOf(r *rpc.Reply) notice {
	n := notice{ReportID: r.CorrelationID, NoticeID: r.ID, Payload: r.Payload()}
	fail := func(code rpc.Code, msg string) {
		n.State, n.Payload = stateFailed, nil
		n.Err = &StatusError{Code: code.String(), Message: msg}
	}
	switch {
	case r.Kind == rpc.KindProgress:
		n.State = stateProgress
	case r.Err != nil:
		msg := r.Err.Message()
		if r.Err.Code() != rpc.CodeInvalidArgument {
			// The worker's own failures may name its files and its
			// database: those stay in the log.
			a.log.Warn("report failed", "report_id", n.ReportID, "code", r.Err.Code().String(), "err", msg)
			msg = "the report could not be made"
		}
		fail(r.Err.Code(), msg)
	default:
		var ready ReportReady
		if err := r.Decode(&ready); err != nil {
			a.log.Warn("undecodable completion notice", "report_id", n.ReportID, "err", err)
			fail(rpc.CodeInternal, "undecodable completion notice")
			break
		}
		name, err := a.reportName(ready.Path)
		if err != nil {
			a.log.Warn("completion notice refused", "report_id", n.ReportID, "path", ready.Path, "err", err)
			fail(rpc.CodeInternal, "the report file is not in the reports folder")
			break
		}
		// Clients see the file's name, not where the server keeps it.
		ready.Path = name
		n.State, n.Path = stateDone, name
		n.Payload, _ = json.Marshal(ready) // a struct of plain fields: no error
	}
	return n
}

// reportName checks that path names an .xlsx right in the reports folder and
// returns its name there.
func (a *webApp) reportName(path string) (string, error) {
	clean := filepath.Clean(path)
	switch {
	case !filepath.IsAbs(clean):
		return "", errors.New("not an absolute path")
	case filepath.Dir(clean) != a.dir:
		return "", errors.New("outside the reports folder")
	case filepath.Ext(clean) != ".xlsx":
		return "", errors.New("not an .xlsx")
	}
	return filepath.Base(clean), nil
}

func (a *webApp) handleIndex(w http.ResponseWriter, r *http.Request) {
	page, err := staticFiles.ReadFile("static/index.html")
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(page) //nolint:errcheck // the client went away
}

// handleStart is POST /reports {"from","to"}: 202 {"id"} at once. The
// period is checked by the worker, the one place that knows what it means:
// a bad one shows as a failed report.
func (a *webApp) handleStart(w http.ResponseWriter, r *http.Request) {
	req, status, msg := decodeReportRequest(http.MaxBytesReader(w, r.Body, 64<<10))
	if status != 0 {
		writeJSONError(w, status, msg)
		return
	}
	id, err := a.start(r.Context(), req)
	if err != nil {
		a.log.Error("starting a report failed", "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, "report not started: try again later")
		return
	}
	w.Header().Set("Location", "/reports/"+id)
	writeJSON(w, http.StatusAccepted, map[string]string{
		"id":     id,
		"status": "/reports/" + id,
		"events": "/reports/" + id + "/events",
	})
}

// reportBody is the body of POST /reports: both fields are required.
type reportBody struct {
	From *string `json:"from"`
	To   *string `json:"to"`
}

// decodeReportRequest reads one JSON object {"from","to"} with no other
// field and nothing after it. On failure it returns the HTTP status and a
// message for the client that names no Go internals.
func decodeReportRequest(body io.Reader) (req ReportRequest, status int, msg string) {
	const want = `body must be one JSON object {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var b *reportBody
	err := dec.Decode(&b)
	if err == nil {
		var extra json.RawMessage
		if dec.Decode(&extra) != io.EOF {
			return req, http.StatusBadRequest, want + ", and nothing after it"
		}
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return req, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over %d bytes", tooBig.Limit)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return req, http.StatusBadRequest, fmt.Sprintf("%s: %q must be a string", want, typeErr.Field)
	case err != nil && strings.HasPrefix(err.Error(), "json: unknown field "):
		return req, http.StatusBadRequest, want + ": " + strings.TrimPrefix(err.Error(), "json: ")
	case err != nil || b == nil:
		return req, http.StatusBadRequest, want
	case b.From == nil || b.To == nil || strings.TrimSpace(*b.From) == "" || strings.TrimSpace(*b.To) == "":
		return req, http.StatusBadRequest, want + `: "from" and "to" are required`
	}
	return ReportRequest{From: *b.From, To: *b.To}, 0, ""
}

// internalError logs err and answers a generic 500: what failed inside
// (SQLite's text, file names) is no business of the client's.
func (a *webApp) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSONError(w, http.StatusInternalServerError, "internal error")
}

func (a *webApp) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, ok := a.status(w, r)
	if ok {
		writeJSON(w, http.StatusOK, st)
	}
}

// status loads the report named in the path, answering 404 when unknown.
func (a *webApp) status(w http.ResponseWriter, r *http.Request) (*Status, bool) {
	st, err := a.store.get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, errNotFound):
		writeJSONError(w, http.StatusNotFound, "no report "+strconv.Quote(r.PathValue("id")))
		return nil, false
	case err != nil:
		a.internalError(w, r, err)
		return nil, false
	}
	return st, true
}

// handleEvents streams a report's status with Server-Sent Events: its
// history first (pending, progress...), then each change as it happens, and
// ends after the done or failed event. Each event is named after the state
// and carries the status JSON; its id lets a reconnecting EventSource resume
// (Last-Event-ID). A stream asked to resume after the end gets 204, which
// tells EventSource to stop reconnecting. Past MaxStreams live streams, one
// more gets 503.
func (a *webApp) handleEvents(w http.ResponseWriter, r *http.Request) {
	if a.streams.Add(1) > int64(a.cfg.MaxStreams) {
		a.streams.Add(-1)
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, "too many live streams: try again later")
		return
	}
	defer a.streams.Add(-1)
	id := r.PathValue("id")
	wake, unsubscribe := a.hub.subscribe(id)
	defer unsubscribe()
	st, ok := a.status(w, r)
	if !ok {
		return
	}
	last, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	evs, err := a.store.eventsSince(r.Context(), id, last)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	if len(evs) == 0 && terminal(st.State) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.stream(w, r, id, last, evs, wake)
}

// stream writes evs, then each change announced on wake, until the report
// ends, the client leaves or the app closes. The server's read and write
// timeouts would cut a long stream: the read deadline is lifted (a GET has
// no body) and each write gets WriteTimeout of its own.
func (a *webApp) stream(w http.ResponseWriter, r *http.Request, id string, last int64, evs []storedEvent, wake <-chan struct{}) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) //nolint:errcheck // unsupported: no deadline to lift
	writing := func() {
		rc.SetWriteDeadline(time.Now().Add(a.cfg.WriteTimeout)) //nolint:errcheck // unsupported: no deadline
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	writing()
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 1000\n\n")

	keepAlive := time.NewTicker(a.cfg.StreamKeepAlive)
	defer keepAlive.Stop()
	for {
		writing()
		for _, e := range evs {
			if err := writeSSE(w, strconv.FormatInt(e.Seq, 10), e.State, e.Data); err != nil {
				return
			}
			last = e.Seq
			if terminal(e.State) {
				rc.Flush() //nolint:errcheck // the stream ends either way
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-wake:
		case <-keepAlive.C:
			writing()
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-a.closing:
			return
		}
		var err error
		if evs, err = a.store.eventsSince(ctx, id, last); err != nil {
			a.log.Warn("event stream: reading the store failed", "report_id", id, "err", err)
			return
		}
	}
}

// handleDownload serves the .xlsx of a finished report.
func (a *webApp) handleDownload(w http.ResponseWriter, r *http.Request) {
	st, ok := a.status(w, r)
	if !ok {
		return
	}
	if st.State != stateDone {
		writeJSONError(w, http.StatusConflict, fmt.Sprintf("report %s is %s, not done", st.ID, st.State))
		return
	}
	// The name was checked when the notice came; the folder is opened as
	// a root, so neither ".." nor a symbolic link leads out of it.
	name := filepath.Base(st.path)
	f, err := os.OpenInRoot(a.dir, name)
	if err != nil {
		a.log.Warn("report file not served", "report_id", st.ID, "err", err)
		writeJSONError(w, http.StatusGone, "report file is gone: "+name)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || filepath.Ext(name) != ".xlsx" {
		a.log.Warn("report file not served", "report_id", st.ID, "name", name, "err", err)
		writeJSONError(w, http.StatusGone, "report file is gone: "+name)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "status": status})
}

// hub wakes the live streams of a report when its status changes. Wake-ups
// are coalesced: a stream that is busy sees one, then reads everything new
// from the store.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: make(map[string]map[chan struct{}]struct{})} }

func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = make(map[chan struct{}]struct{})
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
