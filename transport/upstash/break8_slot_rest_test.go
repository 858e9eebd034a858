package upstash

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Break 8, the rpc client's reading slot over REST: calls that read their
// own replies with /fetch and carry their requests on it, against the real
// REST server on loopback, with tiny deadlines and cancels that cut
// carried fetches short (the request may or may not have been written),
// and Close mid-storm. Every call gets its own reply or its own error, and
// no request is written twice.

// slotRESTRig is a REST server over a broker with topic "svc" (one
// partition), an rpc server on the broker answering "svc" with its int,
// and an rpc client over REST.
type slotRESTRig struct {
	s  *resttest.Server
	rc *requestCounter
	c  *rpc.Client
}

func newSlotRESTRig(t *testing.T) *slotRESTRig {
	t.Helper()
	s := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithTopic("svc", 1)}})
	rc := &requestCounter{h: s.REST, count: map[string]int{}}
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)
	url := hs.URL
	srv, err := rpc.NewServer(s.Broker, rpc.WithName("srv"), rpc.WithConcurrency(64), rpc.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	rpc.Handle(srv, "svc", func(ctx context.Context, n int) (int, error) { return n, nil })
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-served) })
	tr := newTestTransport(t, url, WithPollWindow(time.Second))
	c, err := rpc.NewClient(tr, rpc.WithName("cli"), rpc.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	// Warm up, and let the transport learn that fetches carry records.
	require.Eventually(t, func() bool {
		got, err := rpc.Call[int](t.Context(), c, "svc", 0)
		return err == nil && got == 0 && tr.fetchCarry.Load() == fetchCarryYes
	}, 10*time.Second, time.Millisecond)
	return &slotRESTRig{s: s, rc: rc, c: c}
}

// requestsByID counts the records on "svc" per request id.
func (r *slotRESTRig) requestsByID(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for off := int64(0); ; {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		msgs, err := r.s.Broker.Fetch(ctx, "svc", 0, off, 1000)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		require.NoError(t, err)
		for _, m := range msgs {
			id, _ := m.Header(rpc.HeaderID)
			out[id]++
			off = m.Offset + 1
		}
	}
}

type restStormCall struct {
	n        int
	timeout  time.Duration
	cancelAt time.Duration
	err      error
	got      int
	id       string
	took     time.Duration
}

// restStorm makes calls calls from workers goroutines: normal ones (10s),
// tiny deadlines (1µs–5ms) and cancels after 0–5ms; closeAfter > 0 closes
// the client then. It checks each call's outcome and that no request was
// written twice.
func (r *slotRESTRig) restStorm(t *testing.T, calls, workers int, closeAfter time.Duration) {
	t.Helper()
	all := make([]*restStormCall, calls)
	for i := range all {
		sc := &restStormCall{n: i + 1, timeout: 10 * time.Second}
		switch k := rand.IntN(10); {
		case k < 4:
			sc.timeout = time.Microsecond + time.Duration(rand.Int64N(int64(5*time.Millisecond)))
		case k < 6:
			sc.cancelAt = time.Duration(rand.Int64N(int64(5 * time.Millisecond)))
		}
		all[i] = sc
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= calls {
					return
				}
				sc := all[i]
				ctx, cancel := context.WithCancel(context.Background())
				if sc.cancelAt > 0 {
					tm := time.AfterFunc(sc.cancelAt, cancel)
					defer tm.Stop()
				}
				began := time.Now()
				rep, err := r.c.Call(ctx, "svc", sc.n, rpc.WithTimeout(sc.timeout))
				sc.took = time.Since(began)
				cancel()
				sc.err = err
				if err == nil {
					sc.id, _ = rep.Header(rpc.HeaderCorrelationID)
					sc.got, _ = strconv.Atoi(string(rep.Value))
				}
			}
		}()
	}
	if closeAfter > 0 {
		time.Sleep(closeAfter) // the storm's own pace, not a wait for readiness
		closed := make(chan error, 1)
		go func() { closed <- r.c.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not return mid-storm")
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("storm still running after 60s")
	}
	written := r.requestsByID(t)
	for id, n := range written {
		require.LessOrEqual(t, n, 1, "request %s written %d times", id, n)
	}
	slack := 3 * time.Second
	for _, sc := range all {
		if sc.err == nil {
			require.Equal(t, sc.n, sc.got, "call %d got another call's reply", sc.n)
			require.Equal(t, 1, written[sc.id], "call %d answered; its request written %d times", sc.n, written[sc.id])
			continue
		}
		var e *rpc.Error
		require.ErrorAs(t, sc.err, &e, "call %d", sc.n)
		switch {
		case closeAfter > 0 && errors.Is(sc.err, rpc.ErrClosed):
		case e.Code() == rpc.CodeDeadlineExceeded:
			require.Less(t, sc.timeout, time.Second, "call %d with a 10s timeout timed out: %v", sc.n, sc.err)
			require.Less(t, sc.took, sc.timeout+slack, "call %d overran its deadline", sc.n)
		case e.Code() == rpc.CodeCanceled:
			require.NotZero(t, sc.cancelAt, "call %d canceled by nobody: %v", sc.n, sc.err)
			require.Less(t, sc.took, sc.cancelAt+slack, "call %d overran its cancel", sc.n)
		default:
			t.Fatalf("call %d (timeout %v, cancel %v): unexpected error %v", sc.n, sc.timeout, sc.cancelAt, sc.err)
		}
	}
}

// Few callers (each call carries its request when it reads) and many.
func TestBreak8SlotRESTStorm(t *testing.T) {
	r := newSlotRESTRig(t)
	fetches, produces := r.rc.n("POST /fetch"), r.rc.n("POST /produce")
	r.restStorm(t, 300, 2, 0)
	t.Logf("2 callers: %d fetches, %d produces", r.rc.n("POST /fetch")-fetches, r.rc.n("POST /produce")-produces)
	require.Greater(t, r.rc.n("POST /fetch")-fetches, 0)
	r.restStorm(t, 600, 16, 0)
	require.Eventually(t, func() bool { return r.c.Stats().Pending == 0 }, 5*time.Second, time.Millisecond)
	got, err := rpc.Call[int](t.Context(), r.c, "svc", 7)
	require.NoError(t, err)
	require.Equal(t, 7, got)
}

// Close mid-storm over REST: every call returns, Close returns promptly,
// nothing is left behind (goleak in TestMain).
func TestBreak8SlotRESTStormClose(t *testing.T) {
	r := newSlotRESTRig(t)
	r.restStorm(t, 600, 8, 30*time.Millisecond)
	require.Eventually(t, func() bool { return r.c.Stats().Pending == 0 }, 5*time.Second, time.Millisecond)
}

var _ transport.CarryingPoller = (*tailer)(nil)
