package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// carryingTransport is the embedded broker whose consumers implement
// transport.CarryingPoller (a produce on the broker, then a Poll), with
// counts of the carried produces. carry, when not nil, runs before each
// carried produce: an error it returns is that produce's outcome, nothing
// written.
type carryingTransport struct {
	*memory.Broker
	carried        atomic.Int64 // PollCarrying calls with records
	carriedRecords atomic.Int64
	carry          func(msgs []transport.Message) error
}

func (t *carryingTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := t.Broker.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	return &carryingConsumer{Consumer: c, t: t}, nil
}

type carryingConsumer struct {
	transport.Consumer
	t *carryingTransport
}

func (c *carryingConsumer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	if len(msgs) == 0 {
		acked([]transport.Message{}, nil)
		return c.Poll(ctx)
	}
	c.t.carried.Add(1)
	c.t.carriedRecords.Add(int64(len(msgs)))
	if f := c.t.carry; f != nil {
		if err := f(msgs); err != nil {
			acked(nil, err)
			return nil, err
		}
	}
	out, err := c.t.Broker.Produce(ctx, msgs...)
	acked(out, err)
	if err != nil {
		return nil, err
	}
	return c.Poll(ctx)
}

func newCarrying(t *testing.T, opts ...memory.Option) *carryingTransport {
	t.Helper()
	return &carryingTransport{Broker: newBroker(t, opts...)}
}

// echoServer serves "echo" on tr with 4 workers.
func echoServer(t *testing.T, tr transport.Transport, opts ...rpc.ServerOption) *rpc.Server {
	t.Helper()
	s, err := rpc.NewServer(tr, append([]rpc.ServerOption{rpc.WithName("srv"), quiet, rpc.WithConcurrency(4)}, opts...)...)
	require.NoError(t, err)
	rpc.Handle(s, "echo", func(_ context.Context, n int) (int, error) { return n, nil })
	return s
}

// committedTotal sums the group's committed offsets over topic's
// partitions.
func committedTotal(b *memory.Broker, group, topic string, parts int) int64 {
	var n int64
	for p := range parts {
		if off, err := b.Committed(group, topic, int32(p)); err == nil && off > 0 {
			n += off
		}
	}
	return n
}

// Sequential calls: each reply (with its dedup marker) rides on the
// server's next poll, and every request is committed.
func TestCarriedReplies(t *testing.T) {
	ct := newCarrying(t, memory.WithPartitions(2))
	stop := startServe(t, echoServer(t, ct))
	c := newClient(t, ct.Broker)
	const n = 200
	for i := range n {
		got, err := rpc.Call[int](context.Background(), c, "echo", i, rpc.WithTimeout(5*time.Second))
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
	// Each partition's first record waits for the dedup reader's catch-up,
	// which releases what was handed in, and a worker that gets no CPU
	// within the loop's bounded wait (carryWait, 1 ms: a loaded machine
	// running -race) produces on its own. On a quiet machine all but 2 ride;
	// the share that does is the benchmarks' business (http-req/call in
	// transport/upstash's BenchmarkRPC). Here: most of them ride.
	assert.GreaterOrEqual(t, ct.carried.Load(), int64(n/2), "replies carried by the next poll")
	assert.GreaterOrEqual(t, ct.carriedRecords.Load(), 2*ct.carried.Load(), "each carried produce holds a reply and its marker")
	require.NoError(t, stop())
	assert.Equal(t, int64(n), committedTotal(ct.Broker, "srv", "echo", 2), "every request committed")
}

// A carried produce that fails is retried as a failed own produce is: the
// caller gets its reply all the same.
func TestCarriedProduceFailureIsRetried(t *testing.T) {
	ct := newCarrying(t, memory.WithPartitions(1))
	var failures atomic.Int64
	ct.carry = func([]transport.Message) error {
		if failures.Add(1) <= 3 {
			return errors.New("carried produce failed (test)")
		}
		return nil
	}
	stop := startServe(t, echoServer(t, ct))
	c := newClient(t, ct.Broker)
	for i := range 10 {
		got, err := rpc.Call[int](context.Background(), c, "echo", i, rpc.WithTimeout(10*time.Second))
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
	assert.Greater(t, failures.Load(), int64(3), "carrying went on after the failures")
	require.NoError(t, stop())
	assert.Equal(t, int64(10), committedTotal(ct.Broker, "srv", "echo", 1))
}

// A record is committable only once its carried reply is acknowledged:
// while the carried produce is held up, the request stays uncommitted
// (commit interval or not), and its reply is not out.
func TestCarriedReplyCommittedOnlyAfterAck(t *testing.T) {
	ct := newCarrying(t, memory.WithPartitions(1))
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ct.carry = func(msgs []transport.Message) error {
		for _, m := range msgs {
			if m.Topic != "srv.handled" { // the reply, not a sentinel
				once.Do(func() { close(held); <-release })
				break
			}
		}
		return nil
	}
	stop := startServe(t, echoServer(t, ct, rpc.WithCommitInterval(time.Millisecond)))
	c := newClient(t, ct.Broker)
	done := make(chan error, 1)
	go func() {
		_, err := rpc.Call[int](context.Background(), c, "echo", 1, rpc.WithTimeout(10*time.Second))
		done <- err
	}()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the reply was not carried")
	}
	// Well past many commit intervals: nothing may be committed.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		require.Zero(t, committedTotal(ct.Broker, "srv", "echo", 1), "committed before the reply was acknowledged")
		time.Sleep(5 * time.Millisecond) // sampling a state that must not change, not waiting for one
	}
	close(release)
	require.NoError(t, <-done)
	require.Eventually(t, func() bool { return committedTotal(ct.Broker, "srv", "echo", 1) == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, stop())
}

// A slow handler does not hold the poll loop: other requests are served
// (and their replies carried) while it runs.
func TestCarrySlowHandlerDoesNotHoldPolls(t *testing.T) {
	ct := newCarrying(t, memory.WithPartitions(1))
	s, err := rpc.NewServer(ct, rpc.WithName("srv"), quiet, rpc.WithConcurrency(4))
	require.NoError(t, err)
	entered, release := make(chan struct{}), make(chan struct{})
	rpc.Handle(s, "slow", func(ctx context.Context, n int) (int, error) {
		close(entered)
		<-release
		return n, nil
	})
	rpc.Handle(s, "fast", func(_ context.Context, n int) (int, error) { return n, nil })
	stop := startServe(t, s)
	c := newClient(t, ct.Broker)
	slow := make(chan error, 1)
	go func() {
		_, err := rpc.Call[int](context.Background(), c, "slow", 0, rpc.WithTimeout(20*time.Second))
		slow <- err
	}()
	<-entered
	before := ct.carried.Load()
	for i := range 20 {
		start := time.Now()
		got, err := rpc.Call[int](context.Background(), c, "fast", i, rpc.WithTimeout(5*time.Second))
		require.NoError(t, err)
		require.Equal(t, i, got)
		assert.Less(t, time.Since(start), time.Second, "call %d waited on the slow handler", i)
	}
	assert.Greater(t, ct.carried.Load(), before, "fast replies carried while the slow handler runs")
	close(release)
	require.NoError(t, <-slow)
	require.NoError(t, stop())
}

// Serve stopping with replies handed in, and the rpc conformance suite,
// on a transport that carries.
func TestRPCCarrying(t *testing.T) {
	rpctest.TestRPC(t, func(tb testing.TB, n int) []transport.Transport {
		b, err := memory.New(memory.WithPartitions(3))
		require.NoError(tb, err)
		tb.Cleanup(func() { _ = b.Close() })
		ct := &carryingTransport{Broker: b}
		out := make([]transport.Transport, n)
		for i := range out {
			out[i] = ct
		}
		return out
	})
}

// A carried produce of several workers' replies that the transport refuses
// (as it would refuse one reply to a topic that does not exist) fails
// none of them: each worker produces its own, with its own outcome.
func TestCarriedBatchRefusedFailsNoReply(t *testing.T) {
	ct := newCarrying(t, memory.WithPartitions(4))
	var refused atomic.Int64
	ct.carry = func(msgs []transport.Message) error {
		replies := 0
		for _, m := range msgs {
			if m.Topic != "srv.handled" {
				replies++
			}
		}
		if replies > 1 {
			refused.Add(1)
			return fmt.Errorf("one record of the batch refused (test): %w", transport.ErrUnknownTopic)
		}
		return nil
	}
	stop := startServe(t, echoServer(t, ct))
	c := newClient(t, ct.Broker)
	for round := 0; round < 50 && refused.Load() == 0; round++ {
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				got, err := rpc.Call[int](context.Background(), c, "echo", i, rpc.WithTimeout(10*time.Second))
				assert.NoError(t, err)
				assert.Equal(t, i, got)
			})
		}
		wg.Wait()
	}
	require.Positive(t, refused.Load(), "no carried batch held several replies")
	require.NoError(t, stop())
}
