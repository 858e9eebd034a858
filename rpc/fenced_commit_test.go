package rpc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// A commit answered ErrFenced (another member took this one's place: on
// Kafka a replacing static member, found out at a commit) stops the records
// already polled and not started yet: they are the new member's, which
// reads them from the committed offset. The poll loop, busy handing its
// batch to the workers, learns of the fence only at its next poll; before,
// the workers ran the rest of the batch meanwhile, each record then run by
// both members. Here Poll keeps working after the fence (the window), so
// only the commit tells.
func TestFencedCommitStartsNothingMore(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var (
		fenced   atomic.Bool
		startedN atomic.Int64 // handlers started
		atFence  atomic.Int64 // handlers started when the first commit was answered ErrFenced
	)
	atFence.Store(-1)
	ht := &hookTransport{Transport: b, commit: func(context.Context, []transport.Message) error {
		if fenced.Load() {
			atFence.CompareAndSwap(-1, startedN.Load())
			return fmt.Errorf("replaced by a newer member: %w", transport.ErrFenced)
		}
		return nil
	}}
	started := make(chan int, 20)
	release := make(chan struct{})
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("fence"), quiet,
		rpc.WithConcurrency(1), rpc.WithCommitInterval(0))
	require.NoError(t, err)
	rpc.Handle(s, "fence", func(ctx context.Context, n int) (int, error) {
		startedN.Add(1)
		started <- n
		<-release
		return n, nil
	})
	stop := startServe(t, s)
	c := newClient(t, b)
	const n = 10
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "fence", i))
	}
	<-started // the others wait behind it (concurrency 1)
	fenced.Store(true)
	release <- struct{}{} // done: its commit is answered ErrFenced
	// Every handler that starts is let go, so that only the fence can stop
	// the next one: after 20ms, not at once. The committer acts on the
	// fence a few instructions after the answer the hook counts at, but
	// under the -race suite's load it may be descheduled there while the
	// worker and this loop, ping-ponging, start several records (4 of 10
	// once): the pause leaves it room, and a fence not acted on within it
	// still fails the test.
	deadline := time.After(500 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case <-started:
			time.Sleep(20 * time.Millisecond) // pacing the handlers, not waiting for readiness
			release <- struct{}{}
		case <-deadline:
			waiting = false
		}
	}
	at := atFence.Load()
	require.GreaterOrEqual(t, at, int64(1), "a commit was answered ErrFenced")
	// One may start between the commit's answer and the flag it sets.
	assert.LessOrEqual(t, startedN.Load()-at, int64(1),
		"records started after a commit said fenced: %d of %d", startedN.Load()-at, n)
	close(release)
	_ = stop()
}
