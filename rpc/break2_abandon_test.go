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
