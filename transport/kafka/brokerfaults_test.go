package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// brokerFaults injects broker-side faults through kfake's control hooks:
// every nth request of a kind fails, as a real broker fails it.
type brokerFaults struct {
	on                                     atomic.Bool
	produce, fetch, commit, heartbeat, hbN atomic.Int64
}

func (f *brokerFaults) install(c *kfake.Cluster, every int64) {
	// Produce: NOT_LEADER_OR_FOLLOWER on every partition (leadership moved);
	// the producer refreshes metadata and retries.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !f.on.Load() || f.produce.Add(1)%every != 0 {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	// Fetch: the connection drops (kfake closes it when a control
	// function returns an error); the consumer reconnects.
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !f.on.Load() || f.fetch.Add(1)%every != 0 {
			return nil, nil, false
		}
		return nil, errors.New("injected: fetch connection dropped"), true
	})
	// OffsetCommit: NOT_COORDINATOR (the group coordinator moved); the
	// commit finds the coordinator again and is retried.
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !f.on.Load() || f.commit.Add(1)%every != 0 {
			return nil, nil, false
		}
		cr := req.(*kmsg.OffsetCommitRequest)
		resp := cr.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range cr.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotCoordinator.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	// Heartbeat: NOT_COORDINATOR now and then, as when the coordinator
	// moves; the member finds it again without losing its partitions.
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !f.on.Load() || f.heartbeat.Add(1)%every != 0 {
			return nil, nil, false
		}
		f.hbN.Add(1)
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp, nil, true
	})
}

// Calls made while the broker fails produces, drops fetch connections and
// answers NOT_COORDINATOR to commits and heartbeats each get their own
// right reply, and no handler runs twice for one request.
func TestGuaranteesUnderBrokerFaults(t *testing.T) {
	brokerFaultRun(t, false)
}

// The same faults, and a rebalance in the middle of the run: a second
// server joins, then the first one leaves (drained). Every call still gets
// its own right reply. Declared difference (package doc, "Rebalance and
// in-flight handlers"): a request whose handler is running on the old owner
// when its partition moves can run again on the new owner, because the old
// owner writes its dedup marker only when the handler ends; so at most the
// old owner's in-flight requests (its concurrency, per handover) run twice.
func TestGuaranteesUnderBrokerFaultsWithRebalance(t *testing.T) {
	brokerFaultRun(t, true)
}

func brokerFaultRun(t *testing.T, rebalance bool) {
	c := newFake(t) // kfake always: the faults come from its control hooks
	var faults brokerFaults
	faults.install(c, 10)
	brokers := c.ListenAddrs()
	newTr := func() *kafka.Transport {
		return newTransport(t, brokers, kafka.PollWindow(250*time.Millisecond))
	}
	cliT, srvT1, srvT2 := newTr(), newTr(), newTr()

	prefix := "bfaults-" + uuid.NewString()[:8]
	topic := prefix + "-echo"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const concurrency = 8
	var runs sync.Map
	handler := func(ctx context.Context, n int) (int, error) {
		v, _ := runs.LoadOrStore(rpc.RequestID(ctx), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		time.Sleep(time.Duration(n%3) * time.Millisecond) // work, not a wait for readiness
		return n * 2, nil
	}
	startServer := func(tr *kafka.Transport) func() error {
		s, err := rpc.NewServer(tr, rpc.WithName(prefix+"-srv"), rpc.WithGroup(prefix+"-srv"), rpc.WithLogger(quiet), rpc.WithConcurrency(concurrency))
		require.NoError(t, err)
		rpc.Handle(s, topic, handler)
		return rpctest.Serve(t, s)
	}
	stop1 := startServer(srvT1)
	cl, err := rpc.NewClient(cliT, rpc.WithName(prefix+"-cli"), rpc.WithLogger(quiet), rpc.WithResend(500*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	faults.on.Store(true)

	const calls, callers = 400, 16
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for w := range callers {
		wg.Go(func() {
			for i := w; i < calls; i += callers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := rpc.Call[int](ctx, cl, topic, i)
				cancel()
				switch {
				case err != nil:
					errs <- fmt.Errorf("call %d: %w", i, err)
				case out != 2*i:
					errs <- fmt.Errorf("call %d: got %d", i, out)
				}
				done.Add(1)
			}
		})
	}
	stop2 := func() error { return nil }
	if rebalance {
		// Rebalance mid-run: a second server joins, then the first leaves.
		waitCount(t, &done, calls/3)
		stop2 = startServer(srvT2)
		waitCount(t, &done, 2*calls/3)
		require.NoError(t, stop1())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, stop2())
	if !rebalance {
		require.NoError(t, stop1())
	}
	faults.on.Store(false)

	total, twice := 0, 0
	runs.Range(func(_, v any) bool {
		total++
		if v.(*atomic.Int64).Load() > 1 {
			twice++
		}
		return true
	})
	assert.Equal(t, calls, total, "requests handled")
	if rebalance {
		// Two handovers (join, leave), each with at most the old owner's
		// concurrency in flight.
		assert.LessOrEqual(t, twice, 2*concurrency, "requests whose handler ran more than once")
	} else {
		assert.Zero(t, twice, "requests whose handler ran more than once")
	}
	t.Logf("%d calls answered right, %d requests run twice (rebalance %v); injected %d produce errors, %d fetch connection drops, %d commit and %d heartbeat NOT_COORDINATOR",
		done.Load(), twice, rebalance, faults.produce.Load()/10, faults.fetch.Load()/10, faults.commit.Load()/10, faults.hbN.Load())
}

// waitCount waits until n reaches at least want, within a bound.
func waitCount(t *testing.T, n *atomic.Int64, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for n.Load() < int64(want) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d calls done within 60s", n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter with a deadline
	}
}
