package rpc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Storms on the reading slot: thousands of calls with random tiny
// deadlines, cancel storms, Close mid-storm, over a reply consumer that
// fails polls, polls slowly and (carrying) loses carried produces' acks.

// chaosTransport wraps a slotTransport: it counts the records written per
// request id (own produces and carried ones), fails some produces before
// writing, and wraps the reply consumer in a chaosConsumer.
type chaosTransport struct {
	*slotTransport
	rates atomic.Pointer[chaosRates]

	mu     sync.Mutex
	writes map[string]int
	cons   *chaosConsumer
}

// chaosRates are the shares of operations a chaosTransport disturbs.
type chaosRates struct {
	produceFail float64 // produces failed (transiently) before writing
	pollFail    float64 // polls failed (transiently)
	pollSlow    float64 // polls delayed up to 2ms first
	ackLost     float64 // carried produces written whose outcome is ErrOutcomeUnknown
	carryFail   float64 // carried produces failed (transiently) before writing
}

func newChaos(tr *slotTransport) *chaosTransport {
	ct := &chaosTransport{slotTransport: tr, writes: make(map[string]int)}
	ct.rates.Store(&chaosRates{})
	return ct
}

func (t *chaosTransport) r() *chaosRates { return t.rates.Load() }

func chaosHit(p float64) bool { return p > 0 && rand.Float64() < p }

func (t *chaosTransport) count(msgs []transport.Message) {
	t.mu.Lock()
	for _, m := range msgs {
		id, _ := m.Header(HeaderID)
		t.writes[id]++
	}
	t.mu.Unlock()
}

func (t *chaosTransport) written(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.writes[id]
}

var errChaos = errors.New("test: chaos transient failure")

func (t *chaosTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if chaosHit(t.r().produceFail) {
		return nil, errChaos
	}
	out, err := t.slotTransport.Produce(ctx, msgs...)
	if err == nil {
		t.count(msgs)
	}
	return out, err
}

func (t *chaosTransport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	in, err := t.slotTransport.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	cc := &chaosConsumer{Consumer: in, t: t}
	t.mu.Lock()
	t.cons = cc
	t.mu.Unlock()
	if carrier, ok := in.(*carryConsumer); ok {
		hook := func(ctx context.Context, msgs []transport.Message) (bool, error) {
			switch {
			case chaosHit(t.r().carryFail):
				return false, errChaos
			case chaosHit(t.r().ackLost):
				t.count(msgs)
				return true, fmt.Errorf("test: ack lost: %w", transport.ErrOutcomeUnknown)
			}
			t.count(msgs)
			return true, nil
		}
		carrier.produceErr.Store(&hook)
		return &chaosCarrier{chaosConsumer: cc, in: carrier}, nil
	}
	return cc, nil
}

// chaosConsumer fails and slows polls; polls counts the polls running at
// once, which must never exceed one (the slot's promise).
type chaosConsumer struct {
	transport.Consumer
	t       *chaosTransport
	polling atomic.Int32
	overlap atomic.Int64
	dead    atomic.Pointer[error] // when set, every poll fails with it
}

func (c *chaosConsumer) enter(ctx context.Context) error {
	if c.polling.Add(1) > 1 {
		c.overlap.Add(1)
	}
	if chaosHit(c.t.r().pollSlow) {
		d := time.Duration(rand.Int64N(int64(2 * time.Millisecond)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := c.dead.Load(); err != nil {
		return *err
	}
	if chaosHit(c.t.r().pollFail) {
		return errChaos
	}
	return nil
}

func (c *chaosConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	defer c.polling.Add(-1)
	if err := c.enter(ctx); err != nil {
		return nil, err
	}
	return c.Consumer.Poll(ctx)
}

type chaosCarrier struct {
	*chaosConsumer
	in *carryConsumer
}

func (c *chaosCarrier) PollCarrying(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	defer c.polling.Add(-1)
	if err := c.enter(ctx); err != nil {
		acked(nil, err) // nothing written
		return nil, err
	}
	return c.in.PollCarrying(ctx, msgs, acked)
}

// stormCall is one call of a storm and what came of it.
type stormCall struct {
	n        int
	timeout  time.Duration
	cancelAt time.Duration // > 0: its parent is canceled then
	id       string
	err      error
	got      int
	took     time.Duration
}

// runStorm makes calls calls from workers goroutines, a mix of normal
// calls (10s), tiny deadlines (1µs–5ms) and calls canceled after 0–3ms;
// closeAfter > 0 closes the client then. It checks every call's outcome.
func runStorm(t *testing.T, r *slotRig, ct *chaosTransport, calls, workers int, closeAfter time.Duration) []*stormCall {
	t.Helper()
	all := make([]*stormCall, calls)
	for i := range all {
		sc := &stormCall{n: i + 1, timeout: 10 * time.Second}
		switch k := rand.IntN(10); {
		case k < 4:
			sc.timeout = time.Microsecond + time.Duration(rand.Int64N(int64(5*time.Millisecond)))
		case k < 6:
			sc.cancelAt = time.Duration(rand.Int64N(int64(3 * time.Millisecond)))
		}
		all[i] = sc
	}
	stormDrive(t, r.c, calls, workers, closeAfter, func(i int) {
		sc := all[i]
		ctx, cancel := context.WithCancel(context.Background())
		var stop func() bool
		if sc.cancelAt > 0 {
			tm := time.AfterFunc(sc.cancelAt, cancel)
			stop = tm.Stop
		}
		began := time.Now()
		rep, err := r.c.Call(ctx, "echo", sc.n, WithTimeout(sc.timeout), WithProgress(func(*Reply) {}))
		sc.took = time.Since(began)
		if stop != nil {
			stop()
		}
		cancel()
		sc.err = err
		if err == nil {
			sc.id, _ = rep.Header(HeaderCorrelationID)
			_, _ = fmt.Sscan(string(rep.Value), &sc.got)
		}
	})
	slack := 3 * time.Second // the race detector and a shared machine
	for _, sc := range all {
		if sc.err == nil {
			require.Equal(t, sc.n, sc.got, "call %d got another call's reply", sc.n)
			continue
		}
		var e *Error
		require.ErrorAs(t, sc.err, &e, "call %d", sc.n)
		switch {
		case closeAfter > 0 && errors.Is(sc.err, ErrClosed):
		case errors.Is(sc.err, errChaos) && (sc.timeout < time.Second || sc.cancelAt > 0):
			// Its request could not be sent before its deadline or its
			// cancel: produce returns its last attempt's error (as before
			// the slot).
		case errors.Is(sc.err, context.DeadlineExceeded) || e.Code() == CodeDeadlineExceeded:
			require.Less(t, sc.took, sc.timeout+slack, "call %d (timeout %v) overran its deadline", sc.n, sc.timeout)
			require.True(t, sc.timeout < time.Second, "call %d with a 10s timeout timed out: %v", sc.n, sc.err)
		case errors.Is(sc.err, context.Canceled) || e.Code() == CodeCanceled:
			require.NotZero(t, sc.cancelAt, "call %d was canceled by nobody: %v", sc.n, sc.err)
			require.Less(t, sc.took, sc.cancelAt+slack, "call %d overran its cancel", sc.n)
		default:
			t.Fatalf("call %d (timeout %v, cancel %v): unexpected error %v", sc.n, sc.timeout, sc.cancelAt, sc.err)
		}
	}
	if ct != nil {
		require.Zero(t, ct.cons.overlap.Load(), "two polls of the reply consumer ran at once")
	}
	return all
}

// stormGo runs one(i) for each i below calls from workers goroutines and
// returns a channel closed once every call has returned.
func stormGo(calls, workers int, one func(i int)) <-chan struct{} {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= calls {
					return
				}
				one(i)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// closeReturned waits, up to 5s, for the Close whose error comes on
// closed, requires it to be nil and returns when it came; if it does not
// come, the test fails, saying what(), read then.
func closeReturned(t *testing.T, closed <-chan error, what func() string) time.Time {
	t.Helper()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatalf("Close did not return: %s", what())
	}
	return time.Now()
}

// stormDrive runs a storm (see stormGo); closeAfter > 0 closes c then,
// which must return within 5s. It returns when every call has (within
// 60s), with when Close returned (zero without Close).
func stormDrive(t *testing.T, c *Client, calls, workers int, closeAfter time.Duration, one func(i int)) (closedAt time.Time) {
	t.Helper()
	start := time.Now()
	done := stormGo(calls, workers, one)
	if closeAfter > 0 {
		time.Sleep(closeAfter) // the storm's own pace, not a wait for readiness
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		closedAt = closeReturned(t, closed, func() string { return "mid-storm" })
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("storm still running after %v", time.Since(start))
	}
	return closedAt
}

// echoWorks checks that a lone quiet call on c is answered: whatever a
// test did to c, it still works.
func echoWorks(t *testing.T, c *Client) {
	t.Helper()
	got, err := Call[int](context.Background(), c, "echo", 7)
	require.NoError(t, err)
	require.Equal(t, 7, got)
}

// slotSettled waits (bounded) for the client's calls to be gone and the
// slot to be free of holder, waiters and passive calls.
func slotSettled(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, holder, waiters, passive := c.slotSnapshot()
		if holder == nil && waiters == 0 && passive == 0 && c.Stats().Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not settled: %s", slotDump(c))
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded above
	}
}

func slotDump(c *Client) string {
	state, holder, waiters, passive := c.slotSnapshot()
	return fmt.Sprintf("state %d, holder %v, waiters %d, passive %d, pending %d", state, holder != nil, waiters, passive, c.Stats().Pending)
}

func TestBreak8SlotStorm(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var ct *chaosTransport
			r := newSlotRigOn(t, carry, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct })
			runStorm(t, r, ct, 3000, 48, 0)
			slotSettled(t, r.c)
			require.Zero(t, r.c.Stats().Foreign)
			// The slot still works for a lone caller.
			echoWorks(t, r.c)
		})
	}
}

// Poll failures, slow polls, failed produces and carried produces whose
// outcome is lost: every call still ends with its reply or its own error,
// and no request is written twice (a carried request whose produce failed
// is produced once more; one whose outcome is unknown, never).
func TestBreak8SlotStormFaults(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var ct *chaosTransport
			r := newSlotRigOn(t, carry, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct })
			ct.rates.Store(&chaosRates{produceFail: 0.02, pollFail: 0.02, pollSlow: 0.1, ackLost: 0.1, carryFail: 0.1})
			all := runStorm(t, r, ct, 2000, 32, 0)
			ct.rates.Store(&chaosRates{})
			slotSettled(t, r.c)
			for _, sc := range all {
				if sc.err == nil {
					require.Equal(t, 1, ct.written(sc.id), "call %d: request written %d times", sc.n, ct.written(sc.id))
				}
			}
			ct.mu.Lock()
			for id, n := range ct.writes {
				require.LessOrEqual(t, n, 1, "request %s written %d times", id, n)
			}
			ct.mu.Unlock()
			echoWorks(t, r.c)
		})
	}
}

// Close in the middle of a storm: every call returns promptly with its
// reply or an error, no goroutine is left (goleak in TestMain).
func TestBreak8SlotStormClose(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var ct *chaosTransport
			r := newSlotRigOn(t, carry, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct })
			ct.rates.Store(&chaosRates{pollFail: 0.01, pollSlow: 0.1, ackLost: 0.05})
			runStorm(t, r, ct, 3000, 48, 20*time.Millisecond)
			slotSettled(t, r.c)
		})
	}
}
