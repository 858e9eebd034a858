package otelrpc_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kafkarpc/kafkarpc/otelrpc"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkCall is one caller's Call round trip on the embedded broker
// without an observer and with otelrpc on the OpenTelemetry SDK (every
// span sampled and ended, no exporter; metrics to a manual reader): the
// ratio of calls/s is what the telemetry costs.
//
//	go test -run '^$' -bench Call -benchmem ./otelrpc/
func BenchmarkCall(b *testing.B) {
	for _, observed := range []bool{false, true} {
		name := "none"
		if observed {
			name = "otel"
		}
		b.Run(name, func(b *testing.B) {
			var obsOpt rpc.Option = rpc.WithObserver(nil)
			if observed {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
				defer tp.Shutdown(context.Background())
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer mp.Shutdown(context.Background())
				obs, err := otelrpc.New(otelrpc.WithTracerProvider(tp), otelrpc.WithMeterProvider(mp))
				if err != nil {
					b.Fatal(err)
				}
				obsOpt = rpc.WithObserver(obs)
			}
			br, err := memory.New(memory.WithPartitions(4))
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			s, err := rpc.NewServer(br, rpc.WithName("bench-srv"), quiet, obsOpt)
			if err != nil {
				b.Fatal(err)
			}
			type req struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			}
			rpc.Handle(s, "bench", func(ctx context.Context, r req) (req, error) { return r, nil })
			stop := rpctest.Serve(b, s)
			defer stop()
			c, err := rpc.NewClient(br, rpc.WithName("bench-cli"), quiet, obsOpt)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if _, err := c.Call(ctx, "bench", req{}); err != nil { // warm up
				b.Fatal(err)
			}
			b.ReportAllocs()
			n := 0
			start := time.Now()
			for b.Loop() {
				if _, err := c.Call(ctx, "bench", req{ID: 1, Name: "report"}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "calls/s")
		})
	}
}
