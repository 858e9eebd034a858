package rpc_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// A commit answered ErrFenced makes the workers start nothing more
// (TestFencedCommitStartsNothingMore). When the transport's Poll keeps
// working after that answer (here: only the commit says so), the poll loop
// must end too: else Serve went on polling records that no worker starts,
// never committed nor left the group, so no other member got them, and
// never returned the fence. Serve must return an error wrapping
// transport.ErrFenced promptly, and what it did not handle goes to the next
// member: none lost.
func TestBreak10FencedCommitWithPollWorkingEndsServe(t *testing.T) {
	b := newBroker(t)
	var fenced atomic.Bool
	ht := &hookTransport{Transport: b, commit: func(context.Context, []transport.Message) error {
		if fenced.Load() {
			return fmt.Errorf("replaced by a newer member: %w", transport.ErrFenced)
		}
		return nil
	}}
	var (
		mu   sync.Mutex
		runs = map[int]int{}
	)
	count := func(n int) {
		mu.Lock()
		runs[n]++
		mu.Unlock()
	}
	first := make(chan struct{}, 1)
	release := make(chan struct{})
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("fence10"), quiet,
		rpc.WithConcurrency(1), rpc.WithCommitInterval(0))
	require.NoError(t, err)
	rpc.Handle(s, "fence", func(ctx context.Context, n int) (int, error) {
		count(n)
		select {
		case first <- struct{}{}:
			<-release
		default:
		}
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	c := newClient(t, b)
	const n = 20
	for i := range n / 2 {
		require.NoError(t, c.Notify(context.Background(), "fence", i))
	}
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("no handler started")
	}
	fenced.Store(true)
	close(release) // its commit is answered ErrFenced
	// Sent after the fence: polled by the fenced member only if it goes on.
	for i := n / 2; i < n; i++ {
		require.NoError(t, c.Notify(context.Background(), "fence", i))
	}
	start := time.Now()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, transport.ErrFenced, "Serve's error")
		t.Logf("Serve returned %v after the fence", time.Since(start))
	case <-time.After(3 * time.Second):
		cancel()
		err := <-done
		t.Fatalf("Serve still running 3s after a commit said fenced (returned %v once canceled)", err)
	}

	// The new member (the fenced one left the group) runs what the
	// fenced one did not handle: none lost.
	s2, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("fence10"), quiet, rpc.WithConcurrency(2))
	require.NoError(t, err)
	rpc.Handle(s2, "fence", func(ctx context.Context, n int) (int, error) {
		count(n)
		return n, nil
	})
	stop := startServe(t, s2)
	defer func() { _ = stop() }()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) == n
	}, 10*time.Second, 5*time.Millisecond, "every record is run by one member or the other")
	mu.Lock()
	t.Logf("records run: %d distinct of %d", len(runs), n)
	mu.Unlock()
}
