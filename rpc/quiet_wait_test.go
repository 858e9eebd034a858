package rpc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A call that waits behind the slot's holder, with a context that cannot
// be canceled, waits on its channel alone (awaitQuiet): its deadline comes
// from its own timer (expired), which removes it from pending and ends it
// with the deadline error while the holder reads on. Its reply, once it
// comes, is a late reply.
func TestQuietWaiterEndsAtItsDeadline(t *testing.T) {
	r := newSlotRig(t, false)
	holderDone := r.startCall(t, context.Background(), "gate", 10*time.Second)
	_, holder, _, _ := r.c.slotTaken(t)

	const waiters = 6
	const timeout = 100 * time.Millisecond
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, waiters)
	for i := range waiters {
		go func() {
			t0 := time.Now()
			_, err := Call[int](context.Background(), r.c, "gate", 100+i, WithTimeout(timeout))
			results <- result{err, time.Since(t0)}
		}()
	}
	for range waiters {
		r.waitStarted(t, "gate")
	}
	for range waiters {
		select {
		case res := <-results:
			require.Equal(t, CodeDeadlineExceeded, CodeOf(res.err), "%v", res.err)
			require.ErrorIs(t, res.err, ErrTimeout)
			require.GreaterOrEqual(t, res.took, timeout)
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting call did not end at its deadline")
		}
	}
	// The holder still holds the slot and is the one call pending.
	_, h, w, _ := r.c.slotSnapshot()
	require.Same(t, holder, h)
	require.Zero(t, w)
	require.Equal(t, 1, r.c.Stats().Pending)

	r.open()
	select {
	case err := <-holderDone:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the holder was not answered")
	}
	require.Eventually(t, func() bool { return r.c.Stats().Late == waiters }, 5*time.Second, time.Millisecond)
	require.Zero(t, r.c.Stats().Pending)
}

// Close ends the calls that wait quietly behind the holder, and the
// holder, with ErrClosed, at once.
func TestQuietWaitersEndOnClose(t *testing.T) {
	r := newSlotRig(t, false)
	const calls = 5
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := Call[int](context.Background(), r.c, "gate", i, WithTimeout(time.Minute))
			errs <- err
		}()
		r.waitStarted(t, "gate")
	}
	require.Eventually(t, func() bool { _, _, w, _ := r.c.slotSnapshot(); return w == calls-1 }, 5*time.Second, time.Millisecond)
	closeEndsCalls(t, r.c, errs, calls)
	_, h, w, _ := r.c.slotSnapshot()
	require.Nil(t, h)
	require.Zero(t, w)
}

// closeEndsCalls closes c and checks that the calls calls, whose errors
// come on errs, all end with ErrClosed at once, none left pending.
func closeEndsCalls(t *testing.T, c *Client, errs <-chan error, calls int) {
	t.Helper()
	t0 := time.Now()
	require.NoError(t, c.Close())
	for range calls {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, ErrClosed)
			require.Equal(t, CodeUnavailable, CodeOf(err))
		case <-time.After(5 * time.Second):
			t.Fatal("a call did not end on Close")
		}
	}
	require.Less(t, time.Since(t0), 2*time.Second)
	require.Zero(t, c.Stats().Pending)
}

// Deadlines that race replies: many calls whose handler takes about as
// long as their timeout. Each call ends with its own reply or with the
// deadline error, never another call's reply, whether its deadline timer
// or its reply won (a call whose timer fired as its reply came is not
// reused: its timer's callback may still be looking at it). Run with
// -race.
func TestQuietDeadlinesRaceReplies(t *testing.T) {
	br, err := memory.New(memory.WithPartitions(4))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	s, err := NewServer(br, WithName("srv"), WithConcurrency(32), slotQuiet)
	require.NoError(t, err)
	Handle(s, "slow", func(ctx context.Context, n int) (int, error) {
		time.Sleep(time.Duration(n%3000) * time.Microsecond) // the work, not a wait for readiness
		return n, nil
	})
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-served) })
	c, err := NewClient(br, WithName("cli"), slotQuiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = Call[int](context.Background(), c, "slow", 0, WithTimeout(10*time.Second))
	require.NoError(t, err)

	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		answered, timely int
	)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				n := g*100_000 + i*1000 + rand.IntN(1000)
				timeout := time.Duration(n%3000)*time.Microsecond + 500*time.Microsecond
				t0 := time.Now()
				got, err := Call[int](context.Background(), c, "slow", n, WithTimeout(timeout))
				took := time.Since(t0)
				switch {
				case err == nil:
					if got != n {
						t.Errorf("call %d got %d", n, got)
						return
					}
					mu.Lock()
					answered++
					mu.Unlock()
				case CodeOf(err) == CodeDeadlineExceeded:
					if took < timeout {
						t.Errorf("call %d ended after %v, before its deadline (%v)", n, took, timeout)
						return
					}
					mu.Lock()
					timely++
					mu.Unlock()
				default:
					t.Errorf("call %d: %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("answered %d, ended at their deadline %d", answered, timely)
	require.Equal(t, 16*60, answered+timely)
	require.Zero(t, c.Stats().Pending)
	got, err := Call[int](context.Background(), c, "slow", 7, WithTimeout(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, 7, got)
}

// With the reply consumer stopped under the client nobody reads: calls
// wait passively until their deadline, and Close ends them at once with
// ErrClosed (it sends them endToken: no slot chain reaches a passive call).
func TestQuietPassiveCallsEndOnClose(t *testing.T) {
	var ct *chaosTransport
	r := newSlotRigOn(t, false, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct })
	stop := fmt.Errorf("test: reply consumer: %w", transport.ErrClosed)
	ct.cons.dead.Store(&stop)
	const calls = 6
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			_, err := Call[int](context.Background(), r.c, "echo", i, WithTimeout(time.Minute))
			errs <- err
		}()
	}
	require.Eventually(t, func() bool {
		_, _, _, passive := r.c.slotSnapshot()
		return passive == calls && r.c.Stats().Pending == calls
	}, 5*time.Second, time.Millisecond)
	closeEndsCalls(t, r.c, errs, calls)
	_, _, _, passive := r.c.slotSnapshot()
	require.Zero(t, passive)
}
