package rpc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// A partition that moves to a running server brings records the old owner
// handled but did not commit. The new owner must know their dedup markers
// before it runs them, although its dedup reader follows the topic in
// batches (one read, then a 20 ms pause): Serve syncs the reader (a
// sentinel written and read back) when partitions come to it. (Issue 13,
// "also seen": a rebalance could redeliver a request whose marker the
// follower had not read yet.)
func TestDedupKnownBeforeMovedRecordsRun(t *testing.T) {
	const rounds, burst = 4, 8
	b := newBroker(t)
	runs := newRunCounter()
	newServer := func(tr transport.Transport, instance string) *rpc.Server {
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("handover"), rpc.WithInstance(instance), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "handover", func(ctx context.Context, n int) (int, error) { runs.enter(n); return n, nil })
		return s
	}
	// The old owner never commits (as if it crashed right after replying):
	// all it handled comes back to the next owner.
	noCommit := &hookTransport{Transport: b, commit: func(context.Context, []transport.Message) error {
		return fmt.Errorf("commit refused by the test: %w", transport.ErrClosed)
	}}
	c := newClient(t, b)
	owner := func(instance string) func() bool {
		return func() bool {
			for _, g := range b.Groups() {
				for _, m := range g.Members {
					if g.Name == "handover" && m.Instance == instance && len(m.Assignment["handover"]) == 1 {
						return true
					}
				}
			}
			return false
		}
	}
	stopB := startServe(t, newServer(b, "b"))
	require.Eventually(t, owner("b"), 10*time.Second, time.Millisecond, "B owns the partition")
	for round := range rounds {
		// A ("a" sorts first) takes the partition from B, which keeps
		// following the dedup topic.
		stopA := startServe(t, newServer(noCommit, "a"))
		require.Eventually(t, owner("a"), 10*time.Second, time.Millisecond, "A owns the partition")
		var wg sync.WaitGroup
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := rpc.Call[int](context.Background(), c, "handover", round*burst+i, rpc.WithTimeout(10*time.Second))
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		require.NoError(t, stopA()) // A leaves at once: the partition goes back to B
		require.Eventually(t, func() bool {
			off, err := b.Committed("handover", "handover", 0)
			return err == nil && off == int64((round+1)*burst)
		}, 10*time.Second, time.Millisecond, "B took over round %d and committed it", round)
	}
	require.NoError(t, stopB())
	for n := range rounds * burst {
		assert.Equal(t, 1, runs.get(n), "request %d ran once", n)
	}
}
