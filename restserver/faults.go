package restserver

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Faults makes the server misbehave on purpose, at the given rates (0 to
// 1), so that clients' retries and the rpc layer's recovery can be tested
// against a real HTTP peer. The zero value injects nothing. Never use it in
// production.
type Faults struct {
	// Seed makes a run repeatable; zero means 1.
	Seed uint64
	// Unavailable: answer 503 with a JSON error before doing anything.
	Unavailable float64
	// Slow: wait SlowDelay before handling the request.
	Slow float64
	// SlowDelay is the wait of a slow request; zero means 100ms.
	SlowDelay time.Duration
	// Reset: close the connection without a response, before handling.
	Reset float64
	// ResetAfter: handle the request, then close the connection without
	// sending the response, as when a response is lost: a produce is
	// written and a consume moves the instance's position.
	ResetAfter float64
}

// FaultStats counts the faults a server injected.
type FaultStats struct {
	Unavailable, Slow, Reset, ResetAfter int64
}

// WithFaults turns on fault injection (see Faults). Default off.
func WithFaults(f Faults) Option {
	return optionFunc(func(c *config) { c.faults = &f })
}

type faultInjector struct {
	f                                    Faults
	mu                                   sync.Mutex
	rng                                  *rand.Rand
	unavailable, slow, reset, resetAfter atomic.Int64
}

func newFaultInjector(f Faults) *faultInjector {
	if f.Seed == 0 {
		f.Seed = 1
	}
	if f.SlowDelay <= 0 {
		f.SlowDelay = 100 * time.Millisecond
	}
	return &faultInjector{f: f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed^0x51afd7ed558ccd))}
}

func (fi *faultInjector) hit(rate float64) bool {
	if rate <= 0 {
		return false
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.rng.Float64() < rate
}

// FaultStats returns the counts of injected faults (zero without
// WithFaults).
func (s *Server) FaultStats() FaultStats {
	fi := s.faults
	if fi == nil {
		return FaultStats{}
	}
	return FaultStats{Unavailable: fi.unavailable.Load(), Slow: fi.slow.Load(), Reset: fi.reset.Load(), ResetAfter: fi.resetAfter.Load()}
}

// injectBefore applies the faults that come before handling. It reports
// whether the request was answered (or dropped) by a fault.
func (fi *faultInjector) injectBefore(conn, w http.ResponseWriter, r *http.Request, s *Server) bool {
	if fi.hit(fi.f.Slow) {
		fi.slow.Add(1)
		t := time.NewTimer(fi.f.SlowDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if _, ok := conn.(http.Hijacker); ok && fi.hit(fi.f.Reset) {
		fi.reset.Add(1) // counted first: the client sees the reset at once
		resetConn(conn)
		return true
	}
	if fi.hit(fi.f.Unavailable) {
		fi.unavailable.Add(1)
		s.writeError(w, r, &httpError{status: http.StatusServiceUnavailable, msg: "injected fault: service unavailable"})
		return true
	}
	return false
}

// resetConn closes the client's connection without a response.
func resetConn(w http.ResponseWriter) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// lostResponse collects a handler's response so that it can be thrown away.
type lostResponse struct {
	h      http.Header
	status int
}

func (l *lostResponse) Header() http.Header {
	if l.h == nil {
		l.h = make(http.Header)
	}
	return l.h
}
func (l *lostResponse) Write(b []byte) (int, error) { return len(b), nil }
func (l *lostResponse) WriteHeader(status int)      { l.status = status }
