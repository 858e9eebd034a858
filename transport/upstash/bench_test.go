package upstash

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkProduce measures Produce of one record per call against the REST
// server on loopback, alone and from many goroutines at once, and reports
// the HTTP requests made per record: coalescing brings it far below 1 under
// concurrency.
func BenchmarkProduce(b *testing.B) {
	for _, goroutines := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			s := startServer(b, serverConfig{broker: []memory.Option{memory.WithPartitions(4), memory.WithRetention(10_000, 0)}})
			tr := newTestTransport(b, s.URL)
			value := []byte(`{"report":"monthly","rows":1234}`)
			var seq atomic.Int64
			before := s.REST.Stats().Requests
			start := time.Now()
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			if goroutines == 1 {
				for b.Loop() {
					if _, err := tr.Produce(context.Background(), transport.Message{Topic: "bench", Value: value}); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						k := fmt.Sprint(seq.Add(1) % 64)
						if _, err := tr.Produce(context.Background(), transport.Message{Topic: "bench", Key: k, Value: value}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			elapsed := time.Since(start)
			requests := s.REST.Stats().Requests - before
			b.ReportMetric(float64(requests)/float64(b.N), "requests/msg")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkTailRoundTrip measures the time from Produce to the record being
// returned by a Tail's Poll (the rpc reply path).
func BenchmarkTailRoundTrip(b *testing.B) {
	s := startServer(b, serverConfig{broker: []memory.Option{memory.WithPartitions(1), memory.WithRetention(10_000, 0)}})
	tr := newTestTransport(b, s.URL)
	ctx := context.Background()
	c, err := tr.Tail(ctx, "replies")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := transport.Message{Topic: "replies", Value: []byte("pong")}
	for b.Loop() {
		if _, err := tr.Produce(ctx, msg); err != nil {
			b.Fatal(err)
		}
		for got := 0; got == 0; {
			msgs, err := c.Poll(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got = len(msgs)
		}
	}
}
