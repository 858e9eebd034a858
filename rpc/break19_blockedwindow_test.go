package rpc_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/kafkahash"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// readerRecords counts the records the dedup readers subscribed through it
// polled.
type readerRecords struct {
	transport.Transport
	n atomic.Int64
}

func (r *readerRecords) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	cons, err := r.Transport.Subscribe(ctx, s)
	if err != nil || !strings.Contains(s.Group, ".reader.") {
		return cons, err
	}
	return &countingPolls{Consumer: cons, n: &r.n}, nil
}

type countingPolls struct {
	transport.Consumer
	n *atomic.Int64
}

func (c *countingPolls) Poll(ctx context.Context) ([]transport.Message, error) {
	msgs, err := c.Consumer.Poll(ctx)
	c.n.Add(int64(len(msgs)))
	return msgs, err
}

// keyOn is a key that the default partitioner puts on part of n.
func keyOn(part int32, n int32, i int) string {
	for j := 0; ; j++ {
		if k := fmt.Sprintf("k-%d-%d", i, j); kafkahash.Partition(k, n) == part {
			return k
		}
	}
}

// The early commit that the other instances' markers ask for
// (TestBreak19GroupFillsTheWindowOfAServer) counted them from the last
// call of commit, which may have committed nothing: records handled behind
// one still running are not committable, and the commits that the group's
// markers asked for meanwhile each started the count again. When the
// running record ended, the records behind it, whose markers the group had
// pushed far out of the window, waited for the commit interval's end (a
// minute here), though with the markers read since the last commit made
// they were far over half the window: a crash then ran them all again.
func TestBreak19GroupMarkersCountFromTheLastCommitMade(t *testing.T) {
	const size = 100
	b := newBroker(t, memory.WithTopic("gblk", 2))
	runs := newRunCounter()
	release := make(chan struct{})
	ct := &groupConsumer{Transport: b, group: "gb"}
	rr := &readerRecords{Transport: ct}
	newServer := func(tr transport.Transport, inst string, interval time.Duration) *rpc.Server {
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("gb"), rpc.WithInstance(inst),
			rpc.WithDedup(size, 10*time.Minute), rpc.WithCommitInterval(interval), rpc.WithConcurrency(4), silent)
		require.NoError(t, err)
		rpc.Handle(s, "gblk", func(ctx context.Context, i int) (int, error) {
			runs.enter(i)
			if i == 0 {
				select { // the first record of a's partition runs a while
				case <-release:
				case <-ctx.Done():
				}
			}
			return i, nil
		})
		return s
	}
	stopA := startServe(t, newServer(rr, "a", time.Minute))
	startServe(t, newServer(b, "b", 0))
	pa := assignedPartition(t, b, "gb", "gblk", "a")
	c := newClient(t, b)
	ctx := context.Background()
	const na, nb = 11, 2 * size // a: request 0, running, and 10 behind it
	require.NoError(t, c.Notify(ctx, "gblk", 0, rpc.WithKey(keyOn(pa, 2, 0))))
	require.Eventually(t, func() bool { return runs.get(0) == 1 }, 5*time.Second, time.Millisecond, "request 0 runs")
	for i := 1; i < na; i++ {
		require.NoError(t, c.Notify(ctx, "gblk", i, rpc.WithKey(keyOn(pa, 2, i))))
	}
	require.Eventually(t, func() bool { return runs.distinct() == na }, 5*time.Second, time.Millisecond, "a handled the requests behind 0")
	read := rr.n.Load()
	for i := na; i < na+nb; i++ {
		require.NoError(t, c.Notify(ctx, "gblk", i, rpc.WithKey(keyOn(1-pa, 2, i))))
	}
	require.Eventually(t, func() bool { return runs.distinct() == na+nb }, 5*time.Second, time.Millisecond, "b handled its requests")
	require.Eventually(t, func() bool { return rr.n.Load() >= read+nb }, 5*time.Second, time.Millisecond, "a read b's markers")
	close(release)
	// Request 0 ends: a's records, with b's markers read since a's last
	// commit (none made), are well over half the window.
	committedAt(t, b, "gb", "gblk", pa, na)
	_ = (*ct.cons.Load()).Close() // a dies: its member leaves, nothing more committed
	_ = stopA()
	for i := na + nb; i < na+nb+5; i++ {
		require.NoError(t, c.Notify(ctx, "gblk", i, rpc.WithKey(keyOn(pa, 2, i))))
	}
	require.Eventually(t, func() bool { return runs.distinct() == na+nb+5 }, 8*time.Second, time.Millisecond, "b took a's partition over")
	require.Empty(t, runs.twice(), "requests run twice (of %d handled by a)", na)
}
