package memory

import (
	"context"
	"testing"

	"github.com/kafkarpc/kafkarpc/transport"
)

var benchHeaders = []transport.Header{
	{Key: "rpc-v", Value: "1"},
	{Key: "rpc-id", Value: "01890a5d-ac96-774b-bcce-b302099a8057"},
	{Key: "rpc-kind", Value: "request"},
}

func benchMessage(topic string) transport.Message {
	return transport.Message{Topic: topic, Key: "order-42", Value: make([]byte, 128), Headers: benchHeaders}
}

// BenchmarkProduce appends one keyed record with headers per call.
func BenchmarkProduce(b *testing.B) {
	for _, parts := range []int{1, 8} {
		b.Run(map[int]string{1: "partitions=1", 8: "partitions=8"}[parts], func(b *testing.B) {
			br := newBroker(b, WithTopic("bench", parts))
			defer br.Close()
			ctx := context.Background()
			m := benchMessage("bench")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Produce(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkProducePoll streams records from the benchmark goroutine to a
// group member polling in another goroutine; the figure is the rate at
// which the member receives them.
func BenchmarkProducePoll(b *testing.B) {
	br := newBroker(b, WithTopic("bench", 1))
	defer br.Close()
	ctx := context.Background()
	c, err := br.join(ctx, transport.Subscription{Group: "g", Topics: []string{"bench"}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m := benchMessage("bench")
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	n := b.N
	go func() {
		for got := 0; got < n; {
			msgs, err := c.Poll(ctx)
			if err != nil {
				done <- err
				return
			}
			got += len(msgs)
			if err := c.Commit(ctx, msgs[len(msgs)-1]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range n {
		if _, err := br.Produce(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRoundTrip is the rpc layer's pattern with nothing else: the
// client produces a request, a server member polls it, produces a reply and
// commits, and the client's tail polls the reply. Each round trip is two
// produces, two blocking polls and a commit, with a goroutine hand-off each
// way.
func BenchmarkRoundTrip(b *testing.B) {
	br := newBroker(b, WithTopic("requests", 1), WithTopic("replies", 1))
	defer br.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	server, err := br.join(ctx, transport.Subscription{Group: "workers", Topics: []string{"requests"}})
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	replies, err := br.Tail(ctx, "replies")
	if err != nil {
		b.Fatal(err)
	}
	defer replies.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		reply := benchMessage("replies")
		for {
			msgs, err := server.Poll(ctx)
			if err != nil {
				return
			}
			for range msgs {
				if _, err := br.Produce(ctx, reply); err != nil {
					return
				}
			}
			if err := server.Commit(ctx, msgs...); err != nil {
				return
			}
		}
	}()
	req := benchMessage("requests")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Produce(ctx, req); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < 1; {
			msgs, err := replies.Poll(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got += len(msgs)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
	cancel()
	<-served
}

// BenchmarkProduceBatch appends batches of 100 keyed records of 128 bytes
// with headers, to one partition: the cost of copying values in.
func BenchmarkProduceBatch(b *testing.B) {
	br := newBroker(b, WithTopic("bench", 1))
	defer br.Close()
	ctx := context.Background()
	batch := make([]transport.Message, 100)
	for i := range batch {
		batch[i] = benchMessage("bench")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Produce(ctx, batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}
