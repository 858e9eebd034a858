package upstash

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Bounds on what the client reads from one response.
const (
	maxResponseBytes = 256 << 20 // a consume or fetch answer
	maxTopicsBytes   = 32 << 20  // GET /topics: 100,000 topics of Kafka's longest (249-byte) names
	// An answer sized by its request (produce, offsets) may take this much
	// per element asked for, plus perAnswerBytes.
	perElementBytes = 1 << 10
	perAnswerBytes  = 64 << 10
	maxErrorBytes   = 64 << 10 // an error answer
	maxRetryAfter   = 30 * time.Second
	presizeLimit    = 4 << 20 // largest Content-Length allocated up front
)

// Shared header values of every request (see attempt).
var (
	jsonValue      = []string{"application/json"}
	userAgentValue = []string{"kafkarpc-upstash/1"}
)

// request is one REST call. path is the URL path below the base URL, with
// its segments already escaped; display is the same path for errors and logs.
type request struct {
	method  string
	path    string
	url     string // baseURL+path when made once by the caller; "": made per attempt
	header  http.Header
	body    []byte        // nil: no body
	shared  *sharedBody   // when not nil, body's buffer, read through its readers (see sharedBody)
	wait    time.Duration // server-side long-poll wait, added to the attempt timeout
	noRetry bool
	limit   int      // most bytes of a 2xx answer; 0: maxResponseBytes
	ack     []string // when not nil, the consume's restwire.AckHeader value
	// onResponse, when not nil, sees each response's headers as they
	// arrive, whatever the status, before the body is read (carry.go).
	onResponse func(*http.Response)
}

// sizedLimit is the answer limit of a request asking about n elements
// (messages produced, partitions whose offsets are asked for): a server
// cannot answer more than it was asked.
func sizedLimit(n int) int { return perAnswerBytes + n*perElementBytes }

// newHTTPClient returns the transport's own client: keep-alive connections,
// enough idle connections per host for hundreds of concurrent long polls and
// producers, no overall timeout (long polls are bounded per attempt).
func newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialBodyConn(dialer),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A produce body up to this size goes out with its headers in one
		// write; past it, net/http writes the rest through the
		// connection's ReadFrom (see bodyConn).
		WriteBufferSize: 64 << 10,
	}
	return &http.Client{Transport: tr, CheckRedirect: refuseRedirect}
}

// refuseRedirect is the CheckRedirect of every client the transport uses
// (its own, and its copy of one given by WithHTTPClient): see ErrRedirect.
// The redirected request is never sent, so no header reaches the target.
func refuseRedirect(req *http.Request, via []*http.Request) error {
	from := ""
	if len(via) > 0 && req.Response != nil {
		prev := via[len(via)-1]
		from = fmt.Sprintf(" (a %d answer to %s %s)", req.Response.StatusCode, prev.Method, prev.URL.Redacted())
	}
	return fmt.Errorf("%w: to %s%s", ErrRedirect, req.URL.Redacted(), from)
}

// withoutRedirects returns a shallow copy of c that refuses redirects, so a
// caller's client keeps its transport, jar and timeout but cannot carry the
// credentials elsewhere. c itself is not changed.
func withoutRedirects(c *http.Client) *http.Client {
	cp := *c
	cp.CheckRedirect = refuseRedirect
	return &cp
}

// call sends r, retrying 5xx, 429 and connection errors with exponential
// backoff while ctx lasts, and decodes a 2xx JSON answer into out (unless
// out is nil). A non-2xx answer is returned as an *Error; an ended ctx as
// an error wrapping ctx.Err(). When it gives up retrying (the backoff's
// limits, or ctx's deadline, reached), its error is an *unavailableError,
// wrapping transport.ErrUnavailable and the last attempt's error. The
// first retry of an outage is logged as a warning (see noteFailing).
func (t *Transport) call(ctx context.Context, r request, out any) error {
	var (
		bo      *backoff.ExponentialBackOff
		retries int
		last    error // the last attempt's error, once one was retried
		start   time.Time
	)
	gaveUp := func(why string, deadline bool, err error) error {
		return &unavailableError{method: r.method, path: r.display(), host: t.cfg.base.Host,
			attempts: retries + 1, elapsed: time.Since(start), why: why, deadline: deadline, last: err}
	}
	for {
		err := t.attempt(ctx, r, out)
		if err == nil {
			if t.failing.Load() {
				t.noteAnswered(ctx, r)
			}
			return nil
		}
		if ctx.Err() != nil {
			if last != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return gaveUp("the deadline passed during an attempt", true, last)
			}
			return fmt.Errorf("upstash: %s %s: %w", r.method, r.display(), ctx.Err())
		}
		if t.cfg.noRetry || r.noRetry || !retryable(err, nil) {
			return err
		}
		if bo == nil {
			b := t.cfg.backoff
			bo = backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(b.Initial),
				backoff.WithMaxInterval(b.Max),
				backoff.WithMultiplier(b.Multiplier),
				backoff.WithMaxElapsedTime(b.MaxElapsed),
			)
			start = time.Now()
		}
		last = err
		t.noteFailed()
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return gaveUp(fmt.Sprintf("retries stopped at Backoff.MaxElapsed (%v)", t.cfg.backoff.MaxElapsed), false, err)
		}
		if t.cfg.backoff.MaxRetries > 0 && retries >= t.cfg.backoff.MaxRetries {
			return gaveUp(fmt.Sprintf("retries stopped at Backoff.MaxRetries (%d)", retries), false, err)
		}
		var he *Error
		if errors.As(err, &he) && he.retryAfter > wait {
			wait = he.retryAfter
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			// The caller cannot wait for the next attempt: its deadline is
			// as good as passed, and the error says so as well as why.
			return gaveUp(fmt.Sprintf("the next attempt (in %v) would be past the deadline", wait.Round(time.Millisecond)), true, err)
		}
		retries++
		if retries == 1 {
			t.noteFailing(ctx, r, err)
		}
		t.log.LogAttrs(ctx, slog.LevelDebug, "upstash: retrying request",
			slog.String("method", r.method), slog.String("path", r.display()),
			slog.Int("retry", retries), slog.Duration("wait", wait), slog.String("error", err.Error()))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return gaveUp("the deadline passed while waiting to retry", true, err)
			}
			return fmt.Errorf("upstash: %s %s: %w (last error: %v)", r.method, r.display(), ctx.Err(), err)
		case <-timer.C:
		}
	}
}

// noteFailing logs, as a warning, the first retry of a request that the
// server failed (no connection, or a 5xx or 429): once per outage, not once
// per retry nor per request however many then fail, until the route of
// that request answers again (see noteAnswered).
func (t *Transport) noteFailing(ctx context.Context, r request, err error) {
	t.outageMu.Lock()
	began := !t.failing.Load()
	if began {
		t.failing.Store(true)
		t.outageRoute = r.method + " " + r.display()
	}
	t.outageMu.Unlock()
	if !began {
		return
	}
	t.log.LogAttrs(ctx, slog.LevelWarn, fmt.Sprintf("upstash: %s %s failed: the server at %s cannot be reached or is unavailable; "+
		"retrying with backoff until the deadline (the caller's, the setup timeout, or at most %v per request: Backoff.MaxElapsed); "+
		"further failures are logged at debug level until it answers", r.method, r.display(), t.cfg.base.Host, t.cfg.backoff.MaxElapsed),
		slog.String("host", t.cfg.base.Host), slog.String("error", describeAttempt(err)))
}

// noteFailed notes the time of a failed attempt worth a retry.
func (t *Transport) noteFailed() {
	t.outageMu.Lock()
	t.lastFailed = time.Now()
	t.outageMu.Unlock()
}

// noteAnswered ends the outage noteFailing logged when r answered and is
// of the route whose failure began it, or when no attempt of any route
// failed for Backoff.MaxElapsed (the longest one request is retried): a
// server that fails one route and answers another is in one outage, not
// in one per failed request, and an outage whose route is not asked again
// still ends.
func (t *Transport) noteAnswered(ctx context.Context, r request) {
	if !t.failing.Load() {
		return // the common case: no lock on every answer
	}
	t.outageMu.Lock()
	ended := t.failing.Load() &&
		(r.method+" "+r.display() == t.outageRoute || time.Since(t.lastFailed) >= t.cfg.backoff.MaxElapsed)
	if ended {
		t.failing.Store(false)
		t.outageRoute = ""
	}
	t.outageMu.Unlock()
	if ended {
		t.log.LogAttrs(ctx, slog.LevelInfo, "upstash: the server answers again",
			slog.String("host", t.cfg.base.Host), slog.String("method", r.method), slog.String("path", r.display()))
	}
}

// attempt sends r once.
func (t *Transport) attempt(ctx context.Context, r request, out any) error {
	// The attempt's own bound, unless ctx ends sooner anyway (a produce
	// under a caller's deadline): a timer and a context fewer.
	actx, bound := ctx, r.wait+t.cfg.requestTimeout
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > bound {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	var body io.Reader
	if r.body != nil && r.shared == nil {
		body = bytes.NewReader(r.body)
	}
	u := r.url
	if u == "" {
		u = t.baseURL + r.path
	}
	req, err := http.NewRequestWithContext(actx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("upstash: %s %s: %w", r.method, r.display(), err)
	}
	if r.shared != nil {
		req.Body, req.ContentLength = r.shared.reader(), int64(len(r.body))
		req.GetBody = func() (io.ReadCloser, error) { return r.shared.reader(), nil }
	}
	// The header values are shared, not copied, capped at their length so
	// that an append anywhere copies them: the http.RoundTripper contract
	// forbids modifying a request, and net/http only reads them.
	for k, v := range r.header {
		req.Header[k] = v[:len(v):len(v)]
	}
	if r.ack != nil {
		req.Header[ackHeader] = r.ack[:1:1]
	}
	if r.body != nil {
		req.Header["Content-Type"] = jsonValue[:1:1]
	}
	req.Header["Accept"] = jsonValue[:1:1]
	req.Header["User-Agent"] = userAgentValue[:1:1]
	if t.authValue != nil {
		req.Header["Authorization"] = t.authValue[:1:1]
	}
	resp, err := t.do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &connError{op: r.method + " " + r.display(), err: err}
	}
	if r.onResponse != nil {
		r.onResponse(resp)
	}
	drained := false // the body was read to its end
	defer func() {
		if !drained {
			// Drain a little so the connection can be reused.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		}
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp, r)
	}
	if out == nil {
		return errorBody(resp, r)
	}
	limit := r.limit
	if limit <= 0 {
		limit = maxResponseBytes
	}
	data, pooled, err := readAnswer(resp, limit)
	if pooled != nil {
		// Every decoder copies what it keeps of the answer's bytes.
		defer putAnswerBuf(pooled)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &connError{op: r.method + " " + r.display(), read: true, err: err}
	}
	if len(data) > limit {
		return fmt.Errorf("upstash: %s %s: response over %d bytes", r.method, r.display(), limit)
	}
	drained = true
	if d, ok := out.(jsonDecoder); ok {
		err = d.decodeJSON(ctx, data)
	} else {
		err = json.Unmarshal(data, out)
	}
	if ctx.Err() != nil {
		return ctx.Err() // the caller has gone: what was decoded is moot
	}
	if err != nil {
		return fmt.Errorf("upstash: %s %s: decode %d response: %w", r.method, r.display(), resp.StatusCode, err)
	}
	return nil
}

// do sends req. The transport's own client has no cookie jar, no timeout
// and refuses redirects, so its request goes straight to its RoundTripper:
// http.Client.Do would copy the request's headers for a redirect it never
// follows. Its errors are Client.Do's: a *url.Error, and for a redirect one
// wrapping refuseRedirect's error with the target as its URL. A client
// given with WithHTTPClient is used through Do.
func (t *Transport) do(req *http.Request) (*http.Response, error) {
	if !t.ownClient {
		return t.client.Do(req)
	}
	// Asked for here rather than by net/http, which would add the header
	// to a map of its own on every request; an answer in gzip is
	// decompressed as net/http would.
	req.Header["Accept-Encoding"] = gzipValue[:1:1]
	resp, err := t.client.Transport.RoundTrip(req)
	if err != nil {
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.String(), Err: err}
	}
	if ce := resp.Header["Content-Encoding"]; len(ce) == 1 && strings.EqualFold(ce[0], "gzip") {
		resp.Body = &gzipBody{body: resp.Body}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return resp, nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return resp, nil // not followed by Client.Do either
	}
	defer resp.Body.Close()
	target, err := req.URL.Parse(loc)
	if err != nil {
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.String(),
			Err: fmt.Errorf("failed to parse Location header %q: %v", loc, err)}
	}
	method := req.Method
	if resp.StatusCode < http.StatusTemporaryRedirect && method != http.MethodGet && method != http.MethodHead {
		method = http.MethodGet
	}
	next := &http.Request{Method: method, URL: target, Header: http.Header{}, Host: target.Host, Response: resp}
	return nil, &url.Error{Op: urlErrorOp(req.Method), URL: loc, Err: refuseRedirect(next, []*http.Request{req})}
}

// gzipValue is the Accept-Encoding of the own client's requests.
var gzipValue = []string{"gzip"}

// gzipBody decompresses a gzip answer, starting at its first Read.
type gzipBody struct {
	body io.ReadCloser
	zr   *gzip.Reader
	err  error
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.zr == nil && g.err == nil {
		g.zr, g.err = gzip.NewReader(g.body)
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.zr.Read(p)
}

func (g *gzipBody) Close() error { return g.body.Close() }

// urlErrorOp is the Op of Client.Do's *url.Error for method: "Post" for
// POST.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// readAnswer reads a 2xx response's body, up to limit+1 bytes (one more
// tells an oversize answer). A body of known, moderate length is read into
// a buffer of its size at once; a larger one grows as it arrives, so a
// server cannot make the client allocate more than it sends.
//
// A body of known length up to maxPooledAnswer is read into a buffer of
// answerPool, returned as pooled too: the caller puts it back with
// putAnswerBuf once nothing refers to data.
func readAnswer(resp *http.Response, limit int) (data []byte, pooled *[]byte, err error) {
	if n := resp.ContentLength; n >= 0 && n <= int64(min(presizeLimit, limit)) {
		if n <= maxPooledAnswer {
			pooled = answerPool.Get().(*[]byte)
			data = slices.Grow((*pooled)[:0], int(n))[:n]
			*pooled = data
		} else {
			data = make([]byte, n)
		}
		if _, err := io.ReadFull(resp.Body, data); err != nil {
			return nil, pooled, err
		}
		return data, pooled, nil
	}
	if resp.ContentLength < 0 {
		// Unknown length (a chunked answer, as every carried consume's
		// is: its headers go out before the long poll): read into a
		// pooled buffer, grown as bytes arrive, up to limit+1.
		pooled = answerPool.Get().(*[]byte)
		data, err = readGrowing((*pooled)[:0], resp.Body, limit+1)
		*pooled = data[:0]
		return data, pooled, err
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	return data, nil, err
}

// readGrowing appends rd's bytes to buf until EOF or most bytes, growing
// buf as they arrive (doubling, as io.ReadAll does).
func readGrowing(buf []byte, rd io.Reader, most int) ([]byte, error) {
	for len(buf) < most {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), 512), most-len(buf)))
		}
		n, err := rd.Read(buf[len(buf):min(cap(buf), most)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// maxPooledAnswer is the largest answer read into a pooled buffer.
const maxPooledAnswer = 1 << 20

// answerPool holds the buffers answers are read into (see readAnswer).
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func putAnswerBuf(b *[]byte) {
	if cap(*b) > maxPooledAnswer {
		return // let big ones go
	}
	*b = (*b)[:0]
	answerPool.Put(b)
}

// readError turns a non-2xx response into an *Error, taking the message from
// the documented {"error": "...", "status": N} body when there is one.
func readError(resp *http.Response, r request) *Error {
	e := &Error{Status: resp.StatusCode, Method: r.method, Path: r.display()}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body struct {
		Error  string `json:"error"`
		Result string `json:"result"`
	}
	switch {
	case json.Unmarshal(data, &body) == nil && body.Error != "":
		e.Message = body.Error
	case json.Unmarshal(data, &body) == nil && body.Result != "":
		e.Message = body.Result
	default:
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg == "" || strings.HasPrefix(msg, "<") {
			msg = http.StatusText(resp.StatusCode)
		}
		e.Message = msg
	}
	if e.Temporary() {
		e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	}
	return e
}

// errorBody checks the body of a 2xx answer whose content the caller does
// not need (commit, delete-consumer): a JSON object with a non-empty
// "error" is an *Error all the same, with the body's "status" when it is
// one of 4xx or 5xx, else the response's.
func errorBody(resp *http.Response, r request) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if json.Unmarshal(data, &body) != nil || body.Error == "" {
		return nil
	}
	e := &Error{Status: resp.StatusCode, Message: body.Error, Method: r.method, Path: r.display()}
	if body.Status >= 400 && body.Status < 600 {
		e.Status = body.Status
	}
	return e
}

// parseRetryAfter reads a Retry-After header in seconds or as an HTTP date,
// capped at maxRetryAfter. Zero means absent or unreadable.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
	}
	return max(0, min(d, maxRetryAfter))
}

// display returns the path for errors and logs: unescaped, without query.
func (r request) display() string {
	p := r.path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}

// restPath joins path segments, escaping each, e.g. restPath("consume", g, i)
// is "/consume/<g>/<i>".
func restPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
