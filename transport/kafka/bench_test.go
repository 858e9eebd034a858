package kafka_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// BenchmarkRequestReply measures, in one run on one kfake cluster, a raw
// franz-go request/reply (produce → group consumer → produce reply →
// partition consumer) and rpc.Call over transport/kafka, with 1 and 64
// concurrent callers. Each iteration is one raw round trip and one rpc.Call.
// Metrics: calls/s and p50 of each, and rpc's calls/s as a percentage of
// raw's.
func BenchmarkRequestReply(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			brokers := cluster(b)
			raw := newRawPair(b, brokers)
			rpcCall := newRPCPair(b, brokers)
			// Warm up both paths (joins, metadata, connections).
			for range 50 {
				raw(context.Background())
				rpcCall(context.Background())
			}
			b.ResetTimer()
			rawRate, rawP50 := measure(b, callers, raw)
			rpcRate, rpcP50 := measure(b, callers, rpcCall)
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(rawRate, "raw-calls/s")
			b.ReportMetric(rpcRate, "rpc-calls/s")
			b.ReportMetric(float64(rawP50.Microseconds())/1000, "raw-p50-ms")
			b.ReportMetric(float64(rpcP50.Microseconds())/1000, "rpc-p50-ms")
			b.ReportMetric(100*rpcRate/rawRate, "rpc/raw-%")
		})
	}
}

// measure makes b.N calls of call from callers goroutines and returns the
// calls per second and the median latency.
func measure(b *testing.B, callers int, call func(context.Context) error) (float64, time.Duration) {
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				err := call(ctx)
				lat[w] = append(lat[w], time.Since(t0))
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	return float64(len(all)) / took.Seconds(), all[len(all)/2]
}

// newRPCPair starts an rpc server echoing on a topic and returns a call to
// it through an rpc client; both on their own transport/kafka.
func newRPCPair(b *testing.B, brokers []string) func(context.Context) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	topic := fmt.Sprintf("bench-rpc-%d", time.Now().UnixNano())
	srvT, cliT := newTransport(b, brokers), newTransport(b, brokers)
	s, err := rpc.NewServer(srvT, rpc.WithName(topic+"-srv"), rpc.WithLogger(quiet), rpc.WithConcurrency(64))
	if err != nil {
		b.Fatal(err)
	}
	rpc.Handle(s, topic, func(_ context.Context, in string) (string, error) { return in, nil })
	stop := rpctest.Serve(b, s)
	b.Cleanup(func() { _ = stop() })
	c, err := rpc.NewClient(cliT, rpc.WithName(topic+"-cli"), rpc.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return func(ctx context.Context) error {
		_, err := rpc.Call[string](ctx, c, topic, "ping")
		return err
	}
}

// newRawPair builds the same round trip with franz-go alone: a server
// (group consumer that produces each reply at once, no commits) and a
// client (producer, plus a partition consumer of the reply topic started
// at its end offset, routing replies to callers by an 8-byte id key).
func newRawPair(b *testing.B, brokers []string) func(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	suffix := time.Now().UnixNano()
	reqTopic, replyTopic := fmt.Sprintf("bench-raw-req-%d", suffix), fmt.Sprintf("bench-raw-reply-%d", suffix)
	tr := newTransport(b, brokers) // only to create the topics
	for _, topic := range []string{reqTopic, replyTopic} {
		if _, err := tr.Tail(ctx, topic); err != nil {
			b.Fatal(err)
		}
	}
	mk := func(opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cl.Close)
		return cl
	}
	srv := mk(kgo.ConsumerGroup(reqTopic+"-g"), kgo.ConsumeTopics(reqTopic), kgo.DisableAutoCommit(), kgo.FetchMaxWait(time.Second))
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			srv.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				srv.Produce(ctx, &kgo.Record{Topic: replyTopic, Key: r.Key, Value: r.Value}, nil)
			})
		}
	})

	// Client: the reply reader starts at the exact end offsets.
	ends := map[int32]kgo.Offset{}
	for p := range int32(testPartitions) {
		ends[p] = kgo.NewOffset().AtStart()
	}
	cli := mk()
	replies := mk(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{replyTopic: ends}), kgo.FetchMaxWait(time.Second))
	// Registered after the clients' Close, so it runs before them.
	b.Cleanup(func() { cancel(); wg.Wait() })
	var (
		mu      sync.Mutex
		pending = map[uint64]chan struct{}{}
		ids     atomic.Uint64
	)
	wg.Go(func() {
		for ctx.Err() == nil {
			replies.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				id := binary.BigEndian.Uint64(r.Key)
				mu.Lock()
				ch := pending[id]
				delete(pending, id)
				mu.Unlock()
				if ch != nil {
					close(ch)
				}
			})
		}
	})
	// Wait until the server's group owns the request partitions.
	deadline := time.Now().Add(30 * time.Second)
	for len(srv.GetConsumeTopics()) == 0 || !ownsAll(srv) {
		if time.Now().After(deadline) {
			b.Fatal("raw server did not join within 30s")
		}
		time.Sleep(10 * time.Millisecond) // polling readiness with a deadline
	}
	payload := []byte(`"ping"`)
	return func(ctx context.Context) error {
		id := ids.Add(1)
		key := binary.BigEndian.AppendUint64(nil, id)
		ch := make(chan struct{})
		mu.Lock()
		pending[id] = ch
		mu.Unlock()
		if err := cli.ProduceSync(ctx, &kgo.Record{Topic: reqTopic, Key: key, Value: payload}).FirstErr(); err != nil {
			return err
		}
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func ownsAll(cl *kgo.Client) bool {
	_, gen := cl.GroupMetadata()
	return gen >= 0
}

var _ = kafka.New
