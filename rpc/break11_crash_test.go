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

// While commits fail (or hang), a server must not handle more than about
// its dedup window's size beyond the last commit made: when it goes (its
// final commit failing too, so that nothing more is committed, as after a
// crash) the next member delivers all of that again, and only what its
// window still holds is answered. Four workers on four partitions, a window
// of 8, 1,000 requests in a burst; commits fail from the start, or after
// the first 50 requests, or hang. At most the window and the workers in
// flight (12) may run twice.
//
// BUG (fixed): the hold was skipped whenever no watermark was committable
// at the instant a worker checked, which in a burst
// is common: with as many workers as partitions, each partition's lowest
// record is often one still running, and every record done above it passed
// the check. The exemption is meant for a long handler, but any record
// slower than its neighbours opened it for a moment: 53 to 251 handled
// beyond the last commit here (12 runs of the four cases), up to 251 of
// them run twice. Now a worker waits up to holdGrace for such a record to
// end: 4 to 11 run twice. (Before d5e0b88: 163 to 200 of 200.) The next
// member's window does not answer even the window's share: its own new
// entries (the overflow it runs again, and the fresh records of its other
// partitions) push the predecessor's markers out before their redeliveries
// come, so about everything beyond the last commit runs twice.
func TestBreak11FailingCommitsCrashRunsTwiceAboutTheWindow(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	const (
		window = 8
		conc   = 4
		n      = 1000
	)
	for _, tc := range []struct {
		name     string
		okFirst  int64 // requests handled before commits start to fail
		hang     bool
		interval time.Duration
	}{
		{"failFromStart", 0, false, 0},
		{"failAfter50", 50, false, 0},
		{"failAfter50Paced", 50, false, time.Hour},
		{"hangAfter50", 50, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case waits out a 5s final commit on brokers of its own
			b := newBroker(t, memory.WithPartitions(4))
			tally := &runTally{runs: map[int]int{}}
			var failed atomic.Int64
			ht := &hookTransport{Transport: b, commit: func(ctx context.Context, _ []transport.Message) error {
				if tally.total.Load() < tc.okFirst {
					return nil
				}
				failed.Add(1)
				if tc.hang {
					<-ctx.Done()
					return ctx.Err()
				}
				return errors.New("broker says no")
			}}
			handler := func(ctx context.Context, i int) (int, error) {
				tally.ran(i)
				return i, nil
			}
			const group = "break11-crash"
			a, err := rpc.NewServer(ht, rpc.WithName("a"), rpc.WithGroup(group), quiet, rpc.WithConcurrency(conc),
				rpc.WithDedup(window, time.Hour), rpc.WithCommitInterval(tc.interval), rpc.WithDrainTimeout(time.Second))
			require.NoError(t, err)
			rpc.Handle(a, "work", handler)
			stopA := startServe(t, a)

			c := newClient(t, b)
			for i := range n {
				require.NoError(t, c.Notify(context.Background(), "work", i))
			}
			require.Eventually(t, func() bool { return failed.Load() >= 1 }, 10*time.Second, 5*time.Millisecond)
			heldAt := stalls(t, tally.total.Load)
			// The stop: its final commit fails (or hangs) for its 5s bound,
			// so nothing handled since the last commit is committed.
			start := time.Now()
			require.NoError(t, stopA())
			stopTook := time.Since(start)

			bs, err := rpc.NewServer(b, rpc.WithName("b"), rpc.WithGroup(group), quiet, rpc.WithConcurrency(conc),
				rpc.WithDedup(window, time.Hour))
			require.NoError(t, err)
			rpc.Handle(bs, "work", handler)
			startServe(t, bs)
			awaitProgress(t, tally.unique.Load, n, 10*time.Second, 30*time.Second)
			// The stragglers: wait until B's handlers are idle.
			require.Eventually(t, func() bool {
				before := tally.total.Load()
				time.Sleep(100 * time.Millisecond) // sampling a counter over a fixed span, not waiting for readiness
				return tally.total.Load() == before
			}, 10*time.Second, time.Millisecond)
			again := tally.total.Load() - n
			t.Logf("%s: A handled %d and held (commits failed or hung %d times, stop %v); after it, %d of %d ran twice",
				tc.name, heldAt, failed.Load(), stopTook.Round(time.Millisecond), again, n)
			assert.Less(t, heldAt, int64(n), "A handled everything while no commit was made")
			assert.LessOrEqual(t, again, int64(window+conc), "more ran twice than the window holds and the workers had in flight")
			assert.Less(t, stopTook, 7*time.Second, "the stop is bounded by the final commit's 5s")
		})
	}
}
