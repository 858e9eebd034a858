package rpc_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The benchmarks in this file put rpc's cost next to the transport's: the
// Raw ones do the same request/reply round trip (produce → poll → produce →
// poll) with the transport alone, so calls/s of BenchmarkCall over
// BenchmarkRawRoundTrip is rpc's overhead as a ratio.
//
//	go test -run '^$' -bench . -benchmem ./rpc/

type benchReq struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func benchServer(b *testing.B, br *memory.Broker) *rpc.Client {
	b.Helper()
	s, err := rpc.NewServer(br, rpc.WithName("bench-srv"), quiet, rpc.WithConcurrency(16))
	if err != nil {
		b.Fatal(err)
	}
	rpc.Handle(s, "bench", func(ctx context.Context, r benchReq) (benchReq, error) { return r, nil })
	stop := serve(s)
	b.Cleanup(stop)
	c, err := rpc.NewClient(br, rpc.WithName("bench-cli"), quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	// Warm up: topics created, group joined, first reply through.
	if _, err := c.Call(context.Background(), "bench", benchReq{}); err != nil {
		b.Fatal(err)
	}
	return c
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkCall(b *testing.B) {
	br, err := memory.New(memory.WithPartitions(4))
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	c := benchServer(b, br)
	ctx := context.Background()
	req := benchReq{ID: 1, Name: "report"}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		if _, err := c.Call(ctx, "bench", req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "calls/s")
	reportLatency(b, lat)
}

func BenchmarkCallParallel(b *testing.B) {
	for _, callers := range []int{16, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			br, err := memory.New(memory.WithPartitions(4))
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			c := benchServer(b, br)
			ctx := context.Background()
			b.SetParallelism(max(1, callers/runtimeProcs()))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				req := benchReq{ID: 1, Name: "report"}
				for pb.Next() {
					if _, err := c.Call(ctx, "bench", req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
		})
	}
}

// rawEcho runs the transport-only "server": it polls the request topic and
// produces each record's value back to the reply topic named in its key.
func rawEcho(b *testing.B, br *memory.Broker) {
	b.Helper()
	cons, err := br.Subscribe(context.Background(), transport.Subscription{Group: "raw", Topics: []string{"raw.req"}, Start: transport.StartEarliest})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out := make([]transport.Message, 0, 64)
		for {
			msgs, err := cons.Poll(ctx)
			if err != nil {
				return
			}
			out = out[:0]
			for _, m := range msgs {
				out = append(out, transport.Message{Topic: m.Key, Value: m.Value})
			}
			if _, err := br.Produce(ctx, out...); err != nil {
				return
			}
			_ = cons.Commit(ctx, msgs...)
		}
	}()
	b.Cleanup(func() { cancel(); wg.Wait(); cons.Close() })
}

func BenchmarkRawRoundTrip(b *testing.B) {
	br, err := memory.New(memory.WithPartitions(4))
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	rawEcho(b, br)
	ctx := context.Background()
	replies, err := br.Tail(ctx, "raw.rep")
	if err != nil {
		b.Fatal(err)
	}
	defer replies.Close()
	val := []byte(`{"id":1,"name":"report"}`)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := br.Produce(ctx, transport.Message{Topic: "raw.req", Key: "raw.rep", Value: val}); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 1; {
			msgs, err := replies.Poll(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got += len(msgs)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "roundtrips/s")
}

func BenchmarkRawRoundTripParallel(b *testing.B) {
	br, err := memory.New(memory.WithPartitions(4))
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	rawEcho(b, br)
	ctx := context.Background()
	val := []byte(`{"id":1,"name":"report"}`)
	var mu sync.Mutex
	next := 0
	b.SetParallelism(max(1, 64/runtimeProcs()))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		// Each caller tails a reply topic of its own, the transport-level
		// equivalent of one pending call.
		mu.Lock()
		topic := fmt.Sprintf("raw.rep.%d", next)
		next++
		mu.Unlock()
		replies, err := br.Tail(ctx, topic)
		if err != nil {
			b.Error(err)
			return
		}
		defer replies.Close()
		for pb.Next() {
			if _, err := br.Produce(ctx, transport.Message{Topic: "raw.req", Key: topic, Value: val}); err != nil {
				b.Error(err)
				return
			}
			for got := 0; got < 1; {
				msgs, err := replies.Poll(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				got += len(msgs)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "roundtrips/s")
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
