package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Workers held by awaitCommit while commits fail, then the commit's retry
// is answered ErrFenced (another member took this one's place): Serve
// returns the fenced error promptly (the held workers go at once, the
// poll loop ends), without waiting out the holds or a final commit that
// can only be fenced too, and leaves no goroutine behind (goleak). Also:
// the stop while held with commits still failing returns within the
// final commit's 5s bound plus the drain.
func TestBreak11StopWhileHeld(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	for _, tc := range []struct {
		name  string
		fence bool // else the Serve ctx is cut, commits still failing
	}{{"fencedWhileHeld", true}, {"canceledWhileHeld", false}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			var (
				fenced  atomic.Bool
				failed  atomic.Int64
				handled atomic.Int64
			)
			ht := &hookTransport{Transport: b, commit: func(context.Context, []transport.Message) error {
				failed.Add(1)
				if fenced.Load() {
					return fmt.Errorf("replaced by a newer member: %w", transport.ErrFenced)
				}
				return errors.New("broker says no")
			}}
			const window, conc = 4, 1 // one worker: held deterministically (see TestBreak11FailingCommitsHoldWithTwoWorkers)
			s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("break11-stop-"+tc.name), quiet,
				rpc.WithConcurrency(conc), rpc.WithCommitInterval(0), rpc.WithDedup(window, time.Hour),
				rpc.WithDrainTimeout(500*time.Millisecond))
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
			const n = 100
			for i := range n {
				require.NoError(t, c.Notify(context.Background(), "work", i))
			}
			require.Eventually(t, func() bool { return failed.Load() >= 2 }, 10*time.Second, 5*time.Millisecond)
			held := stalls(t, handled.Load)
			require.Less(t, held, int64(n), "not held")

			start := time.Now()
			if tc.fence {
				fenced.Store(true) // the next retry (backoff) is answered fenced
			} else {
				cancel()
			}
			var serveErr error
			select {
			case serveErr = <-done:
			case <-time.After(10 * time.Second):
				cancel()
				t.Fatalf("Serve still running 10s after the %s (returned %v once canceled)", tc.name, <-done)
			}
			took := time.Since(start)
			t.Logf("%s: held at %d of %d; Serve returned %v after %v", tc.name, held, n, serveErr, took.Round(time.Millisecond))
			if tc.fence {
				assert.ErrorIs(t, serveErr, transport.ErrFenced)
				assert.Less(t, took, 3*time.Second, "the fence did not end Serve promptly")
			} else {
				assert.NoError(t, serveErr)
				assert.Less(t, took, 6*time.Second, "the stop outlasted the final commit's bound")
			}
			assert.Equal(t, held, handled.Load(), "handled on after the stop began")
		})
	}
}
