package rpc_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// Serve abandons a handler that ignores its canceled context (the fix for
// TestBreakServeHangsOnHandlerIgnoringContext), and the request "will be
// redelivered". But the dedup window outlives Serve calls, and so does its
// inflight map: the abandoned handler still holds the request's id in
// flight. When the same Server value serves again, the redelivered record
// is taken for a copy of a request in flight (outWait), is never run, and
// its offset waits for a first delivery that belongs to a Serve that has
// returned: the caller never gets its answer and the partition's watermark
// never passes the record for the rest of the new Serve.
func TestBreak2AbandonedHandlerStallsNextServe(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	b := newBroker(t)
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release) // let the abandoned goroutine end for goleak
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gab"),
		rpc.WithDrainTimeout(50*time.Millisecond), silent)
	require.NoError(t, err)
	var runs atomic.Int32
	entered := make(chan struct{})
	rpc.Handle(s, "abandon", func(ctx context.Context, n int) (int, error) {
		if runs.Add(1) == 1 {
			close(entered)
			<-unblock // a call into a library that takes no context
		}
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	c := newClient(t, b)
	type res struct {
		n   int
		err error
	}
	got := make(chan res, 1)
	go func() {
		n, err := rpc.Call[int](context.Background(), c, "abandon", 7, rpc.WithTimeout(30*time.Second))
		got <- res{n, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("handler not entered")
	}
	cancel()
	select {
	case <-done: // the handler is abandoned
	case <-time.After(50*time.Millisecond + 5*time.Second + 4*time.Second):
		t.Fatal("Serve did not return after abandoning the handler")
	}

	// The same Server serves again: the request was not committed, so it
	// is delivered again, and should run (the first run was abandoned).
	stop := startServe(t, s)
	defer func() { _ = stop() }()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		require.Equal(t, 7, r.n)
	case <-time.After(8 * time.Second):
		t.Errorf("the request abandoned by the first Serve never ran in the second (handler runs: %d): its redelivery waits on the abandoned handler's in-flight dedup entry", runs.Load())
	}
}

// The stall outlives the abandoned handler: when it finally returns, its
// settle runs in the returned Serve's run, whose produces are canceled, so
// the reply is not produced, settle reports the record not done, and the
// copies that waited for it (the new Serve's redelivery) are never marked
// done. The new Serve's watermark on the partition stays below the
// abandoned request's offset for good: nothing handled after it is
// committed, though the handler has returned and later requests are
// answered.
func TestBreak2AbandonedHandlerReturnsPartitionStaysStalled(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	b := newBroker(t)
	require.NoError(t, b.CreateTopic("abandon2", 1))
	unblock, returned := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gab2"),
		rpc.WithDrainTimeout(50*time.Millisecond), silent)
	require.NoError(t, err)
	var runs atomic.Int32
	entered := make(chan struct{})
	rpc.Handle(s, "abandon2", func(ctx context.Context, n int) (int, error) {
		if runs.Add(1) == 1 {
			close(entered)
			<-unblock // ignores its context
			close(returned)
		}
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := newClient(t, b)
	require.NoError(t, c.Notify(context.Background(), "abandon2", 1))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("handler not entered")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(50*time.Millisecond + 5*time.Second + 4*time.Second):
		t.Fatal("Serve did not return after abandoning the handler")
	}

	stop := startServe(t, s)
	defer func() { _ = stop() }()
	// The redelivered record is taken for a copy of the request in flight.
	// The second Serve runs the redelivery itself (the abandoned run's
	// in-flight entry was given up), before the abandoned handler returns.
	require.Eventually(t, func() bool { return runs.Load() >= 2 }, 10*time.Second, 10*time.Millisecond)
	release() // then the abandoned handler returns
	<-returned
	n, err := rpc.Call[int](context.Background(), c, "abandon2", 2, rpc.WithTimeout(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	// Both records (offsets 0 and 1) are done with: the first ran (in the
	// first Serve), the second was answered. Their commit should follow.
	deadline := time.Now().Add(5 * time.Second)
	var off int64
	for time.Now().Before(deadline) {
		off, _ = b.Committed("gab2", "abandon2", 0)
		if off >= 2 {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the broker's committed offset
	}
	t.Errorf("committed offset of abandon2/0 is %d, want 2: the redelivered copy waits forever on the abandoned run's first delivery", off)
}
