package rpc_test

// Written against the seam (transport.Subscription.OnRevoked): this file
// does not compile on 642ebcc, which predates it.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The scenario of TestRevokedPartitionQueueNotRun over a transport that
// calls Subscription.OnRevoked, simulated over the embedded broker (which
// does not call it yet) by watching each member's assignment: a queued
// record of a partition revoked mid-batch must not run on the old owner.
func TestRevokedMidBatchWithOnRevoked(t *testing.T) {
	b := memory.New(memory.WithTopic("revoke5", 2))
	t.Cleanup(func() { b.Close() })
	rs := &revokingTransport{Broker: b}
	t.Cleanup(rs.wg.Wait) // after the servers stopped (cleanups run last first)
	revokeMidBatch(t, b, rs)
}

// revokingTransport is the embedded broker with Subscription.OnRevoked
// called within about 200µs of a rebalance taking partitions from a member.
type revokingTransport struct {
	*memory.Broker
	wg sync.WaitGroup
}

type revokingConsumer struct {
	*memory.Consumer
	stop chan struct{}
	once sync.Once
}

func (r *revokingTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := r.Broker.Join(ctx, s)
	if err != nil {
		return nil, err
	}
	rc := &revokingConsumer{Consumer: c, stop: make(chan struct{})}
	if s.OnRevoked == nil {
		return rc, nil
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		prev := c.Assignment()
		for {
			select {
			case <-rc.stop:
				return
			case <-tick.C:
			}
			cur := c.Assignment()
			var gone []transport.TopicPartition
			for topic, ps := range prev {
				for _, p := range ps {
					kept := false
					for _, q := range cur[topic] {
						kept = kept || q == p
					}
					if !kept {
						gone = append(gone, transport.TopicPartition{Topic: topic, Partition: p})
					}
				}
			}
			if len(gone) > 0 {
				select {
				case <-rc.stop: // closed: not a revocation
					return
				default:
				}
				s.OnRevoked(gone)
			}
			prev = cur
		}
	}()
	return rc, nil
}

func (c *revokingConsumer) Close() error {
	c.once.Do(func() { close(c.stop) })
	return c.Consumer.Close()
}
