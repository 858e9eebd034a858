package rpc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A transport that returns a partition's records out of order within a
// batch (rpctest's PollReorder): a record handed out first and done at
// once must not move the watermark past lower offsets of the same batch
// that the poll loop has not reached yet. Otherwise the lower ones, when
// reached, are "below the mark": run untracked, and committed past while
// they run (a hard stop then loses them).
func TestBreak8ReorderedBatchNeverCommitsPastALowerOffset(t *testing.T) {
	for _, conc := range []int{2, 4} {
		t.Run(map[int]string{2: "concurrency 2", 4: "concurrency 4"}[conc], func(t *testing.T) {
			b := newBroker(t, memory.WithTopic("b8r", 1))
			t.Cleanup(func() { b.Close() })
			c := newClient(t, b)
			const n = 40
			for i := range n { // all there before the server polls: one batch, shuffled
				require.NoError(t, c.Notify(context.Background(), "b8r", i))
			}
			var mu sync.Mutex
			finished := make(map[int]bool)
			slow := make(chan struct{})
			var once sync.Once
			release := func() { once.Do(func() { close(slow) }) }
			t.Cleanup(release) // before the Serve's stop (cleanups run last first)
			s, err := rpc.NewServer(rpctest.Faulty(b, rpctest.Faults{PollReorder: 1, Seed: 7}),
				rpc.WithName("b8r"), rpc.WithGroup("g8r"), rpc.WithConcurrency(conc),
				rpc.WithCommitInterval(time.Millisecond), rpc.WithDrainTimeout(100*time.Millisecond), silent)
			require.NoError(t, err)
			rpc.Handle(s, "b8r", func(ctx context.Context, i int) (int, error) {
				if i == 0 { // the lowest offset: runs until released
					select {
					case <-slow:
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				mu.Lock()
				finished[i] = true
				mu.Unlock()
				return i, nil
			})
			stop := startServe(t, s)
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(finished) == n-1
			}, 10*time.Second, time.Millisecond, "all but the slow one handled")
			assert.Never(t, func() bool {
				off, _ := b.Committed("g8r", "b8r", 0)
				return off > 0
			}, 300*time.Millisecond, time.Millisecond, "committed past offset 0 while its handler runs")
			release()
			require.Eventually(t, func() bool {
				off, _ := b.Committed("g8r", "b8r", 0)
				return off == n
			}, 10*time.Second, time.Millisecond, "all committed once all are done")
			require.NoError(t, stop())
		})
	}
}
