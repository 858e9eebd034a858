package resttest

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSlowDelay is the wait of a slow request when [Faults.SlowDelay] is
// zero: 100 ms.
const DefaultSlowDelay = 100 * time.Millisecond

// Faults sets the rate (0 to 1) of each fault a [FaultHandler] injects. The
// zero value injects nothing.
type Faults struct {
	// Seed makes the sequence of faults repeatable; zero means 1. (The
	// requests that meet them still depend on goroutine scheduling.)
	Seed uint64
	// Unavailable: answer 503 with the server's JSON error
	// {"error":"injected fault: service unavailable","status":503} before
	// the wrapped handler sees the request.
	Unavailable float64
	// Slow: wait SlowDelay before handling the request (or give up, with
	// no response, when the request's context ends first).
	Slow float64
	// SlowDelay is the wait of a slow request; zero means
	// [DefaultSlowDelay].
	SlowDelay time.Duration
	// Reset: close the connection without a response, before handling.
	// Needs a ResponseWriter that implements http.Hijacker (HTTP/1.x).
	Reset float64
	// ResetAfter: let the wrapped handler handle the request into a
	// discarded response, then close the connection without sending it, as
	// when a response is lost: a produce is written and a consume moves the
	// instance's position. Needs http.Hijacker, as Reset does.
	ResetAfter float64
}

// FaultStats counts the faults a [FaultHandler] injected.
type FaultStats struct {
	Unavailable, Slow, Reset, ResetAfter int64
}

// FaultHandler is an http.Handler that injects the faults of its [Faults]
// in front of another handler. Per request, in this order: Slow, Reset,
// Unavailable, ResetAfter; a request that meets none is passed on as it
// came. It is safe for concurrent use; Stats may be read at any time.
type FaultHandler struct {
	next http.Handler
	f    Faults

	mu  sync.Mutex // guards rng
	rng *rand.Rand

	unavailable, slow, reset, resetAfter atomic.Int64
}

// NewFaultHandler returns next wrapped in the faults f.
func NewFaultHandler(next http.Handler, f Faults) *FaultHandler {
	if f.Seed == 0 {
		f.Seed = 1
	}
	if f.SlowDelay <= 0 {
		f.SlowDelay = DefaultSlowDelay
	}
	return &FaultHandler{next: next, f: f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x51afd7ed558ccd))}
}

// Stats returns the counts of the faults injected so far.
func (h *FaultHandler) Stats() FaultStats {
	return FaultStats{Unavailable: h.unavailable.Load(), Slow: h.slow.Load(), Reset: h.reset.Load(), ResetAfter: h.resetAfter.Load()}
}

// ServeHTTP injects at most one fault of each kind into the request, then
// serves it with the wrapped handler unless a fault answered or dropped it.
func (h *FaultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.injectBefore(w, r) {
		return
	}
	if _, ok := w.(http.Hijacker); ok && h.hit(h.f.ResetAfter) {
		h.next.ServeHTTP(&lostResponse{}, r)
		h.resetAfter.Add(1) // counted first: the client sees the reset at once
		resetConn(w)
		return
	}
	h.next.ServeHTTP(w, r)
}

func (h *FaultHandler) hit(rate float64) bool {
	if rate <= 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rng.Float64() < rate
}

// unavailableBody is the JSON error of an injected 503, shaped as the
// server's own errors.
const unavailableBody = `{"error":"injected fault: service unavailable","status":503}`

// injectBefore applies the faults that come before handling. It reports
// whether the request was answered (or dropped) by a fault.
func (h *FaultHandler) injectBefore(w http.ResponseWriter, r *http.Request) bool {
	if h.hit(h.f.Slow) {
		h.slow.Add(1)
		t := time.NewTimer(h.f.SlowDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if _, ok := w.(http.Hijacker); ok && h.hit(h.f.Reset) {
		h.reset.Add(1) // counted first: the client sees the reset at once
		resetConn(w)
		return true
	}
	if h.hit(h.f.Unavailable) {
		h.unavailable.Add(1)
		hdr := w.Header()
		hdr.Set("Content-Type", "application/json")
		hdr.Set("Content-Length", strconv.Itoa(len(unavailableBody)))
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(unavailableBody))
		return true
	}
	return false
}

// resetConn closes the client's connection without a response.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	_ = conn.Close()
}

// lostResponse collects a handler's response so that it can be thrown away.
type lostResponse struct {
	h http.Header
}

func (l *lostResponse) Header() http.Header {
	if l.h == nil {
		l.h = make(http.Header)
	}
	return l.h
}
func (l *lostResponse) Write(b []byte) (int, error) { return len(b), nil }
func (l *lostResponse) WriteHeader(int)             {}
