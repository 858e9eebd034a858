package rpc_test

// Regression tests for commits and revocation (issue 13: bugs 8 and 5).

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Issue 13, bug 8: a commit that failed is retried, at the latest when
// Serve stops: what was handled is committed.
func TestFailedCommitRetried(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var commits atomic.Int64
	ht := &hookTransport{Transport: b, commit: func(_ context.Context, msgs []transport.Message) error {
		for _, m := range msgs {
			if m.Topic == "commit8" && commits.Add(1) == 1 {
				return fmt.Errorf("commit request lost: %w", rpctest.ErrInjected)
			}
		}
		return nil
	}}
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("g8"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "commit8", func(ctx context.Context, n int) (int, error) { return n, nil })
	stop := startServe(t, s)
	_, err = newClient(t, b).Call(context.Background(), "commit8", 1, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return commits.Load() >= 1 }, 5*time.Second, time.Millisecond,
		"the first commit was tried (and failed)")
	require.NoError(t, stop())
	off, err := b.Committed("g8", "commit8", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), off, "the handled request is committed")
}

// Issue 13, bug 5 (second scenario): when a second server joins while the
// first holds a polled batch, the partition moved to the newcomer is not
// run by the old owner from its queue: no request runs twice, but for the
// one the old owner was running when the partition moved (at-least-once:
// it cannot be taken back).
//
// The embedded broker tells the old owner through Subscription.OnRevoked.
func TestRevokedPartitionQueueNotRun(t *testing.T) {
	b := newBroker(t, memory.WithTopic("revoke5", 2))
	t.Cleanup(func() { b.Close() })
	revokeMidBatch(t, b, b)
}

// revokeMidBatch runs the scenario of TestRevokedPartitionQueueNotRun with
// servers on tr, a transport over b.
func revokeMidBatch(t *testing.T, b *memory.Broker, tr transport.Transport) {
	const n = 30
	runs := newRunCounter()
	newServer := func() *rpc.Server {
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("g5"), quiet, rpc.WithConcurrency(1))
		require.NoError(t, err)
		rpc.Handle(s, "revoke5", func(ctx context.Context, i int) (int, error) {
			runs.enter(i)
			select {
			case <-time.After(30 * time.Millisecond): // the handler's work
			case <-ctx.Done():
			}
			return i, nil
		})
		return s
	}
	c := newClient(t, b)
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "revoke5", i))
	}
	startServe(t, newServer())
	require.Eventually(t, func() bool { return runs.distinct() >= 3 }, 5*time.Second, time.Millisecond,
		"the first server is working through its batch")
	startServe(t, newServer()) // joins mid-batch: one partition moves to it
	var moved time.Time        // the partition moved at or before this
	require.Eventually(t, func() bool {
		for _, g := range b.Groups() {
			if g.Name == "g5" && len(g.Members) == 2 {
				moved = time.Now()
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Microsecond, "the second server joined")
	require.Eventually(t, func() bool { return runs.distinct() == n }, 8*time.Second, time.Millisecond,
		"every request ran")
	for p := range int32(2) {
		_, end, err := b.Offsets("revoke5", p)
		require.NoError(t, err)
		committedAt(t, b, "g5", "revoke5", p, end)
	}
	// Give an old owner still running its stale queue the time to show it.
	require.Eventually(t, func() bool { return runs.idleFor(200 * time.Millisecond) }, 8*time.Second, 10*time.Millisecond,
		"no handler entered for a while")
	for i, k := range runs.twice() {
		if first := runs.first(i); first.After(moved) {
			t.Errorf("request %d ran %d times; its first run started %v after the partition moved", i, k, first.Sub(moved))
		}
	}
}
