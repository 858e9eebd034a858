package rpc_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A partition that moves to a live instance of a busy group (other
// instances write markers at 20,000 a second, before and during the move)
// is synced up to now: the requests the crashed owner handled without
// committing are not run again.
func TestBreak19SyncInABusyGroup(t *testing.T) {
	b := newBroker(t, memory.WithTopic("busyx", 1), memory.WithTopic("gb.handled", 1))
	runs := newRunCounter()
	const n = 50
	ct := crashAfterMarkers(b, "gb", n)
	newServer := func(tr transport.Transport, inst string) *rpc.Server {
		// A window that holds all of the test's markers: what is tested is
		// that they are read in time, not the window's size.
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("gb"), rpc.WithInstance(inst),
			rpc.WithDedup(1_000_000, 10*time.Minute), rpc.WithConcurrency(1), silent)
		require.NoError(t, err)
		rpc.Handle(s, "busyx", func(ctx context.Context, i int) (int, error) {
			runs.enter(i)
			return i, nil
		})
		return s
	}
	stop1 := startServe(t, newServer(&crashingCommits{ct}, "a"))
	startServe(t, newServer(b, "b"))
	bothJoined(t, b, "gb")

	// Other instances' markers: 1,000 every 50 ms until the test ends.
	noiseCtx, stopNoise := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stopNoise(); wg.Wait() })
	written := atomic.Int64{}
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		batch := make([]transport.Message, 0, 1000)
		for r := 0; ; r++ {
			select {
			case <-noiseCtx.Done():
				return
			case <-tick.C:
			}
			batch = batch[:0]
			for i := range cap(batch) {
				id := fmt.Sprintf("other-%d-%d", r, i)
				batch = append(batch, transport.Message{Topic: "gb.handled", Key: id, Headers: []transport.Header{
					{Key: "rpc-dedup-by", Value: "other-instance"}, {Key: "rpc-dedup-of", Value: id}}})
			}
			if _, err := b.Produce(noiseCtx, batch...); err != nil {
				return
			}
			written.Add(int64(len(batch)))
		}
	})
	// A second of it before the requests.
	require.Eventually(t, func() bool { return written.Load() >= 20_000 }, 10*time.Second, 10*time.Millisecond)

	c := newClient(t, b)
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "busyx", i))
	}
	require.Eventually(t, ct.crashed.Load, 5*time.Second, time.Millisecond, "s1 handled every request and crashed")
	_ = stop1()
	committedAt(t, b, "gb", "busyx", 0, n) // s2 took over and committed
	t.Logf("%d other markers written", written.Load())
	for i, k := range runs.twice() {
		t.Errorf("request %d ran %d times within the dedup window", i, k)
	}
}

// crashingCommits is crashTransport whose request consumer fails its
// commits until the crash, and after it reports them closed, as the closed
// consumer does: the crashed server's stop does not retry them.
type crashingCommits struct{ *crashTransport }

func (c *crashingCommits) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	cons, err := c.crashTransport.Subscribe(ctx, s)
	if fc, ok := cons.(*failCommit); ok {
		return &commitsUntilCrash{failCommit: fc, crashed: &c.crashed}, err
	}
	return cons, err
}

type commitsUntilCrash struct {
	*failCommit
	crashed *atomic.Bool
}

func (c *commitsUntilCrash) Commit(ctx context.Context, msgs ...transport.Message) error {
	if c.crashed.Load() {
		return c.failCommit.Consumer.Commit(ctx, msgs...)
	}
	return c.failCommit.Commit(ctx, msgs...)
}
