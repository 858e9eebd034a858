package kafkabackend_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkRPCOverREST measures rpc.Call end to end through
// transport/upstash → the REST server → a backend: the Kafka backend on
// kfake (backend=kafka, through the Kafka protocol on loopback) and, for a
// ratio from the same run, the embedded broker (backend=memory). An rpc
// server and an rpc client are separate REST clients; echo handler, small
// JSON payload, 4 partitions. Each sub-benchmark runs b.N calls from a fixed
// number of callers and reports calls/s, p50-µs and p99-µs (one Call) and
// http-req/call (requests the REST server received, from every client, per
// call). Run it with:
//
//	go test -run '^$' -bench RPCOverREST -benchtime 2s ./restserver/kafkabackend/
func BenchmarkRPCOverREST(b *testing.B) {
	for _, backend := range []string{"kafka", "memory"} {
		for _, callers := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("backend=%s/callers=%d", backend, callers), func(b *testing.B) {
				benchRPC(b, backend, callers)
			})
		}
	}
}

type benchReq struct {
	ID     int    `json:"id"`
	Report string `json:"report"`
	Rows   int    `json:"rows"`
}

func benchRPC(b *testing.B, backend string, callers int) {
	var be restserver.Backend
	switch backend {
	case "kafka":
		c := kafkatest.Start(b, kafkatest.Config{Backend: []kafkabackend.Option{kafkabackend.WithAutoCreateTopics(4)}})
		be = c.Backend
	default:
		mb, err := memory.New(memory.WithPartitions(4), memory.WithRetention(10_000, 0))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = mb.Close() })
		be = restserver.NewMemoryBackend(mb)
	}
	rs, err := restserver.New(be, restserver.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	url := serve(b, rs)
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))

	srv, err := rpc.NewServer(newUpstash(b, url), rpc.WithName("bench-srv"), quiet, rpc.WithConcurrency(max(16, callers)))
	if err != nil {
		b.Fatal(err)
	}
	rpc.Handle(srv, "echo", func(_ context.Context, r benchReq) (benchReq, error) { return r, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	})
	cli, err := rpc.NewClient(newUpstash(b, url), rpc.WithName("bench-cli"), quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Close() })

	// Warm up: topics made, group joined, connections open, from every
	// caller at once.
	warm := make(chan error, callers)
	for i := range callers {
		go func() {
			wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer wcancel()
			_, err := cli.Call(wctx, "echo", benchReq{ID: i, Report: "warm-up"})
			warm <- err
		}()
	}
	for range callers {
		if err := <-warm; err != nil {
			b.Fatal(err)
		}
	}

	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	lat := make([][]time.Duration, callers)
	before := rs.Stats().Requests
	b.ResetTimer()
	start := time.Now()
	for g := range callers {
		wg.Go(func() {
			own := make([]time.Duration, 0, b.N/callers+1)
			req := benchReq{ID: g, Report: "monthly", Rows: 1234}
			for next.Add(1) <= int64(b.N) && !failed.Load() {
				t0 := time.Now()
				out, err := rpc.Call[benchReq](context.Background(), cli, "echo", req)
				if err == nil && out != req {
					err = errors.New("echo answered a different value")
				}
				if err != nil {
					failed.Store(true)
					b.Errorf("caller %d: %v", g, err)
					return
				}
				own = append(own, time.Since(t0))
			}
			lat[g] = own
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	requests := rs.Stats().Requests - before
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(requests)/float64(len(all)), "http-req/call")
}
