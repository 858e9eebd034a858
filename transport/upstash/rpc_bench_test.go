package upstash

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

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkRPC measures rpc calls end to end over the REST API: the
// project's REST server on a loopback port (served by its own Serve, as
// kafka-rest serves it), an rpc.Server on one Transport
// and an rpc.Client on another (two separate REST clients of one server, as
// two services would be), an echo handler and a small JSON payload. Each
// sub-benchmark runs b.N calls from a fixed number of concurrent callers and
// reports calls/s (completed calls per second of wall time), p50-µs and
// p99-µs (latency of one Call, from its start to its reply) and
// http-req/call (HTTP requests the REST server received during the run,
// from every client: produce, consume, commit, fetch; per call). Run it
// with:
//
//	go test -run '^$' -bench RPC -benchtime 3s ./transport/upstash/
func BenchmarkRPC(b *testing.B) {
	for _, callers := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			benchRPC(b, callers)
		})
	}
}

// BenchmarkRPCCarryBound is BenchmarkRPC with 256 callers, with the
// default bound on what one consume carries (WithMaxCarriedAnswer) and
// with none: what the bound that keeps answers under proxies' header caps
// costs when many replies could ride on one consume.
func BenchmarkRPCCarryBound(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchRPC(b, 256) })
	b.Run("unbounded", func(b *testing.B) { benchRPC(b, 256, WithMaxCarriedAnswer(0)) })
}

// Settings of the benchmark's setup.
const (
	// rpcBenchPartitions is the partition count of the request and reply
	// topics.
	rpcBenchPartitions = 4
	// rpcBenchRetention bounds each partition of the broker, so that the
	// heap, and with it the GC's work, does not grow with b.N.
	rpcBenchRetention = 10_000
)

type echoReq struct {
	ID     int    `json:"id"`
	Report string `json:"report"`
	Rows   int    `json:"rows"`
}

func benchRPC(b *testing.B, callers int, opts ...Option) {
	s, cli := rpcBenchSetup(b, callers, opts...)
	var before uint64
	b.ResetTimer()
	leg := rpcBenchLeg(b, cli, b.N, callers, func() { before = s.REST.Stats().Requests })
	b.StopTimer()
	requests := s.REST.Stats().Requests - before
	if leg.calls == 0 {
		return
	}
	b.ReportMetric(leg.perSec, "calls/s")
	b.ReportMetric(float64(leg.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(leg.p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(requests)/float64(leg.calls), "http-req/call")
	b.ReportMetric(float64(leg.cpu.Nanoseconds())/1e3, "cpu-µs/call")
}

// BenchmarkRPCScaling runs b.N calls from 1,024 and then from 4,096
// concurrent callers on one setup (as BenchmarkRPC's) and reports calls/s
// and p99 of both and their ratio: at least 1 means more callers did not
// mean fewer calls.
//
//	go test -run '^$' -bench RPCScaling -benchtime 100000x ./transport/upstash/
//
// Give each leg about 3 s of calls (100,000 of them here), as the other
// benchmarks run: with 20,000 each of the 4,096 callers makes about five
// calls, and the leg measures the ramp (4,096 requests produced at once,
// then drained at the end) more than callers calling.
func BenchmarkRPCScaling(b *testing.B) {
	s, cli := rpcBenchSetup(b, 4096)
	b.ResetTimer()
	var r0, r1, r2 uint64
	few := rpcBenchLeg(b, cli, b.N, 1024, func() { r0 = s.REST.Stats().Requests })
	many := rpcBenchLeg(b, cli, b.N, 4096, func() { r1 = s.REST.Stats().Requests })
	r2 = s.REST.Stats().Requests
	b.StopTimer()
	if few.calls == 0 || many.calls == 0 {
		return
	}
	b.ReportMetric(float64(r1-r0)/float64(few.calls), "http-req/call@1024")
	b.ReportMetric(float64(r2-r1)/float64(many.calls), "http-req/call@4096")
	b.ReportMetric(few.perSec, "calls/s@1024")
	b.ReportMetric(many.perSec, "calls/s@4096")
	b.ReportMetric(many.perSec/few.perSec, "4096/1024")
	b.ReportMetric(float64(few.p99.Microseconds()), "p99-µs@1024")
	b.ReportMetric(float64(many.p99.Microseconds()), "p99-µs@4096")
	b.ReportMetric(float64(few.cpu.Nanoseconds())/1e3, "cpu-µs/call@1024")
	b.ReportMetric(float64(many.cpu.Nanoseconds())/1e3, "cpu-µs/call@4096")
}

// rpcBenchSetup starts the REST server, an echo rpc.Server on one
// Transport and an rpc.Client on another, warmed up by callers concurrent
// calls.
func rpcBenchSetup(b *testing.B, callers int, opts ...Option) (*restServer, *rpc.Client) {
	b.Helper()
	s := startServer(b, serverConfig{serve: true, broker: []memory.Option{
		memory.WithPartitions(rpcBenchPartitions),
		memory.WithRetention(rpcBenchRetention, 0),
	}})
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))

	srvT := newTestTransport(b, s.URL, opts...)
	srv, err := rpc.NewServer(srvT, rpc.WithName("bench-srv"), quiet,
		rpc.WithConcurrency(max(16, min(callers, 256))))
	if err != nil {
		b.Fatal(err)
	}
	rpc.Handle(srv, "echo", func(_ context.Context, r echoReq) (echoReq, error) { return r, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	})

	cliT := newTestTransport(b, s.URL, opts...)
	cli, err := rpc.NewClient(cliT, rpc.WithName("bench-cli"), quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cli.Close() })

	// Warm up: topics created, group joined, connections open, first
	// replies through, from every caller at once.
	warm := make(chan error, callers)
	for i := range callers {
		go func() {
			_, err := cli.Call(context.Background(), "echo", echoReq{ID: i, Report: "warm-up"})
			warm <- err
		}()
	}
	for range callers {
		if err := <-warm; err != nil {
			b.Fatal(err)
		}
	}
	return s, cli
}

// rpcLeg is what rpcBenchLeg measured.
type rpcLeg struct {
	calls    int
	perSec   float64
	p50, p99 time.Duration
	cpu      time.Duration // the process's CPU time per call (server, clients, broker)
}

// rpcBenchLeg runs n typed calls spread over callers goroutines. Each
// goroutine first makes one untimed call and waits for the others: the
// measurement is of callers calling, not of goroutines starting and growing
// their stacks (a cost per caller, spread over fewer calls the more callers
// there are).
//
// atStart, when not nil, is called as the timed part begins.
func rpcBenchLeg(b *testing.B, cli *rpc.Client, n, callers int, atStart func()) rpcLeg {
	b.Helper()
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		warm   sync.WaitGroup
	)
	start := make(chan struct{})
	lat := make([][]time.Duration, callers)
	for g := range callers {
		warm.Add(1)
		wg.Go(func() {
			req := echoReq{ID: g, Report: "monthly", Rows: 1234}
			call := func() error {
				out, err := rpc.Call[echoReq](context.Background(), cli, "echo", req)
				if err == nil && out != req {
					err = errors.New("echo answered a different value")
				}
				return err
			}
			err := call()
			warm.Done()
			if err != nil {
				failed.Store(true)
				b.Errorf("caller %d: warm-up: %v", g, err)
				return
			}
			<-start
			own := make([]time.Duration, 0, n/callers+1)
			for next.Add(1) <= int64(n) && !failed.Load() {
				t0 := time.Now()
				if err := call(); err != nil {
					failed.Store(true)
					b.Errorf("caller %d: %v", g, err)
					return
				}
				own = append(own, time.Since(t0))
			}
			lat[g] = own
		})
	}
	warm.Wait()
	if atStart != nil {
		atStart()
	}
	cpu0 := testutil.ProcessCPU()
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := testutil.ProcessCPU() - cpu0
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return rpcLeg{}
	}
	slices.Sort(all)
	return rpcLeg{calls: len(all), perSec: float64(len(all)) / elapsed.Seconds(),
		p50: all[len(all)/2], p99: all[len(all)*99/100], cpu: cpu / time.Duration(len(all))}
}
