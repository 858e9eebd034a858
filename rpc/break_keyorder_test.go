package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// WithMaxPollInterval's doc: "Serve polls whenever a worker is free, so it
// must exceed the longest time all workers can be busy." With key ordering,
// each worker has its own queue of 64 and the poll loop blocks on the full
// queue of one hot key while every other worker is idle: Serve stops
// polling, the group drops it after its max poll interval, and its
// partitions are revoked and handed round again (work in flight is redone
// by the next reader), although three of its four workers had nothing to do.
func TestBreakKeyOrderingHotKeyStopsPolling(t *testing.T) {
	b := newBroker(t, memory.WithTopic("hotx", 1))
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gho"), rpc.WithKeyOrdering(),
		rpc.WithConcurrency(4), rpc.WithMaxPollInterval(500*time.Millisecond), silent)
	require.NoError(t, err)
	rpc.Handle(s, "hotx", func(ctx context.Context, n int) (int, error) {
		select {
		case <-time.After(20 * time.Millisecond): // the work
		case <-ctx.Done():
		}
		return n, nil
	})
	c := newClient(t, b)
	for i := range 200 { // 4s of work on one key, polled in one batch: the poll loop waits ~2.7s on the hot queue
		require.NoError(t, c.Notify(context.Background(), "hotx", i, rpc.WithKey("hot")))
	}
	startServe(t, s)
	assert.Never(t, func() bool {
		for _, g := range b.Groups() { // like a Poll, Groups drops overdue members
			if g.Name == "gho" {
				return len(g.Members) == 0
			}
		}
		return false
	}, 3500*time.Millisecond, 20*time.Millisecond, "the server was dropped from its group for not polling while 3 of its 4 workers were idle")
}
