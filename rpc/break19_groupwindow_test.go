package rpc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// README, Guarantees: commits are paced (WithCommitInterval), and "so that
// the window still holds them, a server commits early once half the
// window's size is handled and not committed". The window is the group's,
// though: the other instances' markers fill it too. Server a handles fewer
// than half the window's size within its commit interval; server b, busy
// on the other partition, handles twice the window meanwhile. a counted
// only its own records: it did not commit, and when it crashed, b, taking
// its partition over, ran all of them again. a must commit once it has
// learned of half a window's markers (its own uncommitted included).
func TestBreak19GroupFillsTheWindowOfAServer(t *testing.T) {
	const size = 100
	b := newBroker(t, memory.WithTopic("gwin", 2))
	runs := newRunCounter()
	ct := &groupConsumer{Transport: b, group: "gw"}
	newServer := func(tr transport.Transport, inst string, interval time.Duration) *rpc.Server {
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("gw"), rpc.WithInstance(inst),
			rpc.WithDedup(size, 10*time.Minute), rpc.WithCommitInterval(interval), silent)
		require.NoError(t, err)
		rpc.Handle(s, "gwin", func(ctx context.Context, i int) (int, error) {
			runs.enter(i)
			return i, nil
		})
		return s
	}
	stopA := startServe(t, newServer(ct, "a", time.Minute))
	startServe(t, newServer(b, "b", 0))
	pa := assignedPartition(t, b, "gw", "gwin", "a")
	c := newClient(t, b)
	const na, nb = size/2 - 10, 2 * size
	for i := range na {
		require.NoError(t, c.Notify(context.Background(), "gwin", i, rpc.WithKey(keyOn(pa, 2, i))))
	}
	require.Eventually(t, func() bool { return runs.distinct() == na }, 5*time.Second, time.Millisecond, "a handled its requests")
	for i := na; i < na+nb; i++ {
		require.NoError(t, c.Notify(context.Background(), "gwin", i, rpc.WithKey(keyOn(1-pa, 2, i))))
	}
	require.Eventually(t, func() bool { return runs.distinct() == na+nb }, 5*time.Second, time.Millisecond, "b handled its requests")
	// a learns b's markers within about a second (its dedup reader's
	// pause): they fill the window as its own handled records do.
	committedAt(t, b, "gw", "gwin", pa, na)
	_ = (*ct.cons.Load()).Close() // a dies: its member leaves, nothing more committed
	_ = stopA()
	// b takes a's partition over, from the offset a committed.
	for i := na + nb; i < na+nb+5; i++ {
		require.NoError(t, c.Notify(context.Background(), "gwin", i, rpc.WithKey(keyOn(pa, 2, i))))
	}
	require.Eventually(t, func() bool { return runs.distinct() == na+nb+5 }, 8*time.Second, time.Millisecond, "b took a's partition over")
	require.Empty(t, runs.twice(), "requests run twice (of %d handled by a)", na)
}

// groupConsumer keeps the last consumer of group subscribed through it.
type groupConsumer struct {
	transport.Transport
	group string
	cons  atomic.Pointer[transport.Consumer]
}

func (g *groupConsumer) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	cons, err := g.Transport.Subscribe(ctx, s)
	if err == nil && s.Group == g.group {
		g.cons.Store(&cons)
	}
	return cons, err
}

// assignedPartition waits until group has two members, one of them
// instance with one partition of topic, and returns that partition.
func assignedPartition(t *testing.T, b *memory.Broker, group, topic, instance string) int32 {
	t.Helper()
	var part int32 = -1
	require.Eventually(t, func() bool {
		for _, g := range b.Groups() {
			if g.Name != group || len(g.Members) != 2 {
				continue
			}
			for _, m := range g.Members {
				if m.Instance == instance && len(m.Assignment[topic]) == 1 {
					part = m.Assignment[topic][0]
					return true
				}
			}
		}
		return false
	}, 5*time.Second, time.Millisecond, "both servers joined, one partition each")
	return part
}
