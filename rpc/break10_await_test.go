package rpc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// stalls waits 500ms for the records in flight to finish, then watches
// count for 1.5s (longer than the second a wait used to last) and reports
// its value, failing t if it grew meanwhile.
func stalls(t *testing.T, count func() int64) int64 {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // sampling a counter over fixed spans, not waiting for readiness
	before := count()
	time.Sleep(1500 * time.Millisecond)
	after := count()
	assert.Equal(t, before, after, "handled on while no commit was made")
	return after
}

// Workers held back by awaitCommit go on only once a commit is made: a
// commit that hangs (a broker that does not answer) holds them, whatever
// the commit interval, so that what a crash would deliver again stays
// within the dedup window (before, each wait ended after a second and they
// went on handling, about two records a second here, none of it
// committed). Once the commit answers they go on. Serve's stop returns
// promptly when the hung commit answers after it, and within the final
// commit's bound (5s) when it never does: the committer's commit in flight
// is cut short at the stop, instead of holding Serve for its own 10s bound
// before the final commit's.
func TestBreak10AwaitCommitWithHungCommit(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	for _, tc := range []struct {
		name     string
		interval time.Duration
		answer   bool // the hung commit answers (else it never does)
	}{{"interval0", 0, true}, {"intervalHour", time.Hour, true}, {"interval0NeverAnswered", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case waits on hung commits, on a broker of its own
			b := newBroker(t)
			var (
				hang    atomic.Bool
				gate    = make(chan struct{})
				hungN   atomic.Int64
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
			// One worker: records finish in offset order, so every record
			// handled is below the watermark and committable at once
			// (records handled above one still running hold nobody; see
			// TestLongHandlerHoldsNobody).
			const window, conc = 4, 1
			s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("await10"), quiet,
				rpc.WithConcurrency(conc), rpc.WithCommitInterval(tc.interval),
				rpc.WithDedup(window, time.Hour), rpc.WithDrainTimeout(100*time.Millisecond))
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
			hang.Store(true)
			const n = 30
			for i := range n {
				require.NoError(t, c.Notify(context.Background(), "work", i))
			}
			require.Eventually(t, func() bool { return hungN.Load() >= 1 && handled.Load() >= window }, 10*time.Second, 5*time.Millisecond)
			held := stalls(t, handled.Load)
			t.Logf("hung commits: %d; handled while hung: %d of %d", hungN.Load(), held, n)
			assert.Less(t, held, int64(n), "every record handled while no commit was made")

			if tc.answer {
				close(gate)
				require.Eventually(t, func() bool { return handled.Load() == n }, 10*time.Second, 5*time.Millisecond,
					"workers did not go on once the commit answered: %d of %d", handled.Load(), n)
				hang.Store(false)
			}
			stopAt := time.Now()
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
				took := time.Since(stopAt)
				t.Logf("Serve returned %v after the stop", took)
				if tc.answer {
					assert.Less(t, took, 1500*time.Millisecond, "Serve's stop with commits answering")
				} else {
					// drain 100ms + the final commit's 5s: held workers
					// go at the stop, and the committer's hung commit is
					// cut short (it held the stop 10s more before).
					assert.Less(t, took, 7*time.Second, "Serve's stop behind a commit that never answers")
				}
			case <-time.After(25 * time.Second):
				t.Fatal("Serve did not return")
			}
			if !tc.answer {
				close(gate)
			}
		})
	}
}
