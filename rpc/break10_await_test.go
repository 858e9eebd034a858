package rpc_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Workers held back by awaitCommit go on when the next commit is over
// (ce58f93). A commit that hangs (a broker that does not answer) must not
// stall them for good: each wait is bounded (a second), so they go on
// handling, slowly, whatever the commit interval; and Serve's stop, once
// the hung commit gives up, returns promptly: no worker is left waiting on
// a committer that stopped.
func TestBreak10AwaitCommitWithHungCommit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"interval0", 0}, {"intervalHour", time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			var (
				hang    atomic.Bool
				gate    = make(chan struct{})
				hungN   atomic.Int64
				mu      sync.Mutex
				starts  []time.Time
				handled atomic.Int64
			)
			ht := &hookTransport{Transport: b, commit: func(ctx context.Context, _ []transport.Message) error {
				if !hang.Load() {
					return nil
				}
				hungN.Add(1)
				select {
				case <-gate:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}
			s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("await10"), quiet,
				rpc.WithConcurrency(2), rpc.WithCommitInterval(tc.interval),
				rpc.WithDedup(4, time.Hour), rpc.WithDrainTimeout(100*time.Millisecond))
			require.NoError(t, err)
			rpc.Handle(s, "work", func(ctx context.Context, n int) (int, error) {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				handled.Add(1)
				return n, nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			c := newClient(t, b)
			hang.Store(true)
			const n = 30
			for i := range n {
				require.NoError(t, c.Notify(context.Background(), "work", i))
			}
			// With the commit hung, the workers are held (a window's
			// size handled since the last commit) and go on a second
			// later each time: 2 workers, so about 2 records a second.
			require.Eventually(t, func() bool { return handled.Load() >= 12 }, 10*time.Second, 10*time.Millisecond,
				"workers stalled behind a hung commit: %d handled", handled.Load())
			mu.Lock()
			var maxGap time.Duration
			for i := 1; i < len(starts); i++ {
				maxGap = max(maxGap, starts[i].Sub(starts[i-1]))
			}
			got := len(starts)
			mu.Unlock()
			t.Logf("hung commits: %d; handled %d; longest gap between handler starts %v", hungN.Load(), got, maxGap)
			assert.Less(t, maxGap, 1500*time.Millisecond, "a worker held longer than awaitCommit's bound")

			stopAt := time.Now()
			cancel()
			// The committer's hung commit holds Serve (its own bound is
			// commitTimeout): let it answer 300ms after the stop.
			time.AfterFunc(300*time.Millisecond, func() { close(gate) })
			select {
			case err := <-done:
				assert.NoError(t, err)
				took := time.Since(stopAt)
				t.Logf("Serve returned %v after the stop (commit released at 300ms, drain 100ms)", took)
				assert.Less(t, took, 2300*time.Millisecond, "Serve's stop: drain 100ms + awaitCommit's second + the hung commit's 300ms")
			case <-time.After(15 * time.Second):
				t.Fatal("Serve did not return")
			}
		})
	}
}
