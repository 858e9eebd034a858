package rpc_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// limitedCarrying is carryingTransport whose consumers carry at most limit
// records a poll (transport.CarryLimiter), and which records the largest
// batch PollCarrying was given.
type limitedCarrying struct {
	*carryingTransport
	limit   int
	largest atomic.Int64
}

func (t *limitedCarrying) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := t.carryingTransport.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	return &limitedConsumer{carryingConsumer: c.(*carryingConsumer), t: t}, nil
}

type limitedConsumer struct {
	*carryingConsumer
	t *limitedCarrying
}

func (c *limitedConsumer) CarryFits(msgs []transport.Message) bool { return len(msgs) <= c.t.limit }

func (c *limitedConsumer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	for {
		m := c.t.largest.Load()
		if int64(len(msgs)) <= m || c.t.largest.CompareAndSwap(m, int64(len(msgs))) {
			break
		}
	}
	return c.carryingConsumer.PollCarrying(ctx, msgs, acked)
}

// An rpc server whose consumer carries only so many records a poll
// (transport.CarryLimiter: over REST, what keeps the answer's header under
// proxies' caps) never hands it a larger batch: the workers whose replies
// would take the batch over produce them on their own, and every call is
// answered.
func TestCarrierKeepsBatchesWithinTheLimit(t *testing.T) {
	lt := &limitedCarrying{carryingTransport: newCarrying(t, memory.WithPartitions(2)), limit: 4}
	s, err := rpc.NewServer(lt, rpc.WithName("srv"), quiet, rpc.WithConcurrency(16))
	require.NoError(t, err)
	release := make(chan struct{})
	rpc.Handle(s, "echo", func(ctx context.Context, n int) (int, error) {
		select { // hold them so that many finish together
		case <-release:
		case <-ctx.Done():
		}
		return n, nil
	})
	stop := startServe(t, s)
	c := newClient(t, lt.Broker)
	const n = 64
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for i := range n {
		wg.Go(func() {
			got, err := rpc.Call[int](context.Background(), c, "echo", i, rpc.WithTimeout(10*time.Second))
			if err != nil || got != i {
				failed.Add(1)
			}
		})
	}
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	wg.Wait()
	assert.Zero(t, failed.Load(), "calls not answered")
	assert.Positive(t, lt.carried.Load(), "replies carried at all")
	assert.LessOrEqual(t, lt.largest.Load(), int64(lt.limit), "a batch over the consumer's limit")
	t.Logf("carried polls %d, records %d, largest batch %d", lt.carried.Load(), lt.carriedRecords.Load(), lt.largest.Load())
	require.NoError(t, stop())
}
