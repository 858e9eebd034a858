package rpc_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// BenchmarkServeOnly measures the server side of a call alone: the same
// echo server as BenchmarkCallVsRaw's, driven by raw callers that produce a
// v1 request record straight to the broker and tail a reply topic of their
// own (no rpc.Client: its costs are not in the figures). It reports what
// BenchmarkCallVsRaw does for the call leg, next to the raw round trip on
// a broker of the same shape:
//
//	go test -run '^$' -bench ServeOnly -benchtime 2s ./rpc/
func BenchmarkServeOnly(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			srv := serveCaller(b, callers)
			raw := rawCaller(b, newBenchBroker(b), callers)
			b.ResetTimer()
			s := runLeg(b, b.N, callers, srv)
			r := runLeg(b, b.N, callers, raw)
			b.StopTimer()
			b.ReportMetric(s.perSec/r.perSec, "serve/raw")
			b.ReportMetric(float64(s.p50.Nanoseconds())/1e3, "serve-p50-µs")
			b.ReportMetric(float64(s.p99.Nanoseconds())/1e3, "serve-p99-µs")
			b.ReportMetric(float64(s.cpu.Nanoseconds())/1e3, "cpu-µs/serve")
			b.ReportMetric(float64(r.cpu.Nanoseconds())/1e3, "cpu-µs/raw-trip")
			b.ReportMetric(s.allocs, "allocs/serve")
			b.ReportMetric(r.allocs, "allocs/raw-trip")
		})
	}
}

// serveCaller returns the op of one raw caller of the echo server on a new
// broker, warmed up by callers concurrent calls.
func serveCaller(b *testing.B, callers int) func(int) error {
	b.Helper()
	br := newBenchBroker(b)
	benchServer(b, br) // the server, its group joined and its topics made
	ctx := context.Background()
	tails := make([]transport.Consumer, callers)
	topics := make([]string, callers)
	for g := range callers {
		topics[g] = fmt.Sprintf("srv.rep.%d", g)
		if _, err := br.Produce(ctx, transport.Message{Topic: topics[g]}); err != nil {
			b.Fatal(err) // the topic made before its tail starts
		}
		t, err := br.Tail(ctx, topics[g])
		if err != nil {
			b.Fatal(err)
		}
		tails[g] = t
	}
	b.Cleanup(func() {
		for _, t := range tails {
			t.Close()
		}
	})
	val := []byte(`{"id":1,"name":"report"}`)
	var seq atomic.Int64
	op := func(g int) error {
		id := "srv-" + strconv.FormatInt(seq.Add(1), 10)
		req := transport.Message{Topic: "bench", Value: val, Headers: []transport.Header{
			{Key: rpc.HeaderVersion, Value: rpc.ProtocolVersion},
			{Key: rpc.HeaderID, Value: id},
			{Key: rpc.HeaderKind, Value: string(rpc.KindRequest)},
			{Key: rpc.HeaderFrom, Value: "raw"},
			{Key: rpc.HeaderReplyTo, Value: topics[g]},
			{Key: rpc.HeaderTimeoutMs, Value: "30000"},
			{Key: rpc.HeaderContentType, Value: "application/json"},
		}}
		if _, err := br.Produce(ctx, req); err != nil {
			return err
		}
		for {
			msgs, err := tails[g].Poll(ctx)
			if err != nil {
				return err
			}
			for i := range msgs {
				if cid, _ := msgs[i].Header(rpc.HeaderCorrelationID); cid == id {
					return nil
				}
			}
		}
	}
	runLeg(b, callers, callers, op) // warm up
	return op
}
