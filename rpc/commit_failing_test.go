package rpc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// While commits fail, what is handled stays uncommitted: a crash then
// delivers all of it again, and the dedup window answers only what it
// still holds. So the workers must stop handling at about a window's size
// (plus what is in flight) beyond the last commit that was made, however
// long the commits fail: a failed commit must not count as one, nor may
// the wait for it end on a timer while nothing was committed (before: all
// 30 handled within 20ms). The failing commit is retried with backoff, not
// back to back by the held workers. Once commits are made again, the rest
// is handled, and committed.
func TestFailingCommitsHoldHandlingToTheWindow(t *testing.T) {
	b := newBroker(t)
	var (
		failing atomic.Bool
		failed  atomic.Int64
		handled atomic.Int64
	)
	failing.Store(true)
	ht := &hookTransport{Transport: b, commit: func(ctx context.Context, _ []transport.Message) error {
		if failing.Load() {
			failed.Add(1)
			return errors.New("broker says no")
		}
		return nil
	}}
	// One worker: records finish in offset order, so every record
	// handled is below the watermark and committable at once
	// (records handled above one still running hold nobody; see
	// TestLongHandlerHoldsNobody).
	const window, conc = 4, 1
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("failing-commits"), quiet,
		rpc.WithConcurrency(conc), rpc.WithCommitInterval(0), rpc.WithDedup(window, time.Hour),
		rpc.WithDrainTimeout(100*time.Millisecond))
	require.NoError(t, err)
	rpc.Handle(s, "work", func(ctx context.Context, n int) (int, error) {
		handled.Add(1)
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := newClient(t, b)
	const n = 30
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "work", i))
	}
	require.Eventually(t, func() bool { return failed.Load() >= 3 && handled.Load() >= window }, 10*time.Second, 5*time.Millisecond)
	got := stalls(t, handled.Load)
	t.Logf("with commits failing: %d handled of %d, %d commits failed (with backoff)", got, n, failed.Load())
	assert.Less(t, got, int64(n), "every record handled while no commit was made")
	assert.Less(t, failed.Load(), int64(40), "failing commits retried back to back, not with backoff")

	failing.Store(false)
	require.Eventually(t, func() bool { return handled.Load() == n }, 10*time.Second, 5*time.Millisecond,
		"handling did not resume once commits were made: %d of %d", handled.Load(), n)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	// Everything handled was committed at the stop: a new member of the
	// group finds nothing to run.
	s2, err := rpc.NewServer(b, rpc.WithName("srv2"), rpc.WithGroup("failing-commits"), quiet)
	require.NoError(t, err)
	var again atomic.Int64
	rpc.Handle(s2, "work", func(ctx context.Context, n int) (int, error) { again.Add(1); return n, nil })
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- s2.Serve(ctx2) }()
	require.NoError(t, c.Notify(context.Background(), "work", -1)) // the one record it must run
	require.Eventually(t, func() bool { return again.Load() >= 1 }, 10*time.Second, 5*time.Millisecond)
	cancel2()
	require.NoError(t, <-done2)
	assert.Equal(t, int64(1), again.Load(), "records handled before the stop were run again: their commit was lost")
}

// A handler that runs long keeps its partition's watermark below it, so
// nothing handled after it can be committed until it ends. That must not
// stop the server: the window-sized hold is for commits that fail or hang,
// not for this (a report that takes twenty minutes would else stop every
// other request once a window's size of them was handled).
func TestLongHandlerHoldsNobody(t *testing.T) {
	b := newBroker(t, memory.WithPartitions(1))
	release := make(chan struct{})
	var handled atomic.Int64
	const window, n = 4, 30
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("long-handler"), quiet,
		rpc.WithConcurrency(2), rpc.WithCommitInterval(0), rpc.WithDedup(window, time.Hour))
	require.NoError(t, err)
	rpc.Handle(s, "work", func(ctx context.Context, i int) (int, error) {
		if i == 0 {
			select {
			case <-release:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		handled.Add(1)
		return i, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := newClient(t, b)
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "work", i))
	}
	require.Eventually(t, func() bool { return handled.Load() == n-1 }, 10*time.Second, 5*time.Millisecond,
		"records after the long one stopped at %d of %d", handled.Load(), n-1)
	close(release)
	require.Eventually(t, func() bool { return handled.Load() == n }, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}
