package rpc_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The benchmarks in this file put rpc.Call next to its floor in one run:
//
//	go test -run '^$' -bench 'VsRaw|Scaling' -benchtime 2s ./rpc/
//
// BenchmarkCallVsRaw runs b.N typed calls (rpc.Call[T] against a handler
// registered with rpc.Handle, which decodes and re-encodes a small JSON
// struct) and then b.N raw round trips on a broker of the same shape
// (produce the request, poll it, produce the reply, read it), from the same
// number of concurrent callers, and reports both rates, their ratio
// (call/raw), p50 and p99 of each, and the allocations and bytes allocated
// per call and per round trip (every goroutine's, read from
// runtime.MemStats, so the server's and the broker's count too).
//
// BenchmarkCallScaling runs b.N typed calls from 1,024 and then from 4,096
// concurrent callers and reports calls/s and p99 of both and their ratio:
// at least 1 means more callers did not mean fewer calls. It then runs the
// raw round trip the same way, on a broker of its own, and reports its
// ratio (raw-4096/1024): the floor's own loss from the caller goroutines
// (their stacks for the GC to scan, the scheduler's queues, the caches),
// which no library on top of it can avoid.

// legResult is one leg of a benchmark: n operations from some callers.
type legResult struct {
	perSec   float64
	p50, p99 time.Duration
	allocs   float64 // per operation
	bytes    float64 // allocated per operation
	// cpu is the process's CPU time (user and system, every goroutine)
	// per operation: on a shared machine it varies far less than the rate,
	// which depends on the CPU the other tenants leave.
	cpu time.Duration
}

// runLeg runs n operations spread over callers goroutines, each calling
// op(caller) in a loop, and measures the rate, latency, CPU time and
// allocations. Each goroutine first makes one untimed call and waits for
// the others: the measurement is of callers calling, not of goroutines
// starting and growing their stacks, a cost per caller that would be
// spread over fewer calls the more callers there are.
func runLeg(b *testing.B, n, callers int, op func(caller int) error) legResult {
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
		wg.Add(1)
		warm.Add(1)
		go func() {
			defer wg.Done()
			err := op(g)
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
				if err := op(g); err != nil {
					failed.Store(true)
					b.Errorf("caller %d: %v", g, err)
					return
				}
				own = append(own, time.Since(t0))
			}
			lat[g] = own
		}()
	}
	warm.Wait()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := testutil.ProcessCPU()
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	cpu := testutil.ProcessCPU() - cpu0
	runtime.ReadMemStats(&after)
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return legResult{}
	}
	slices.Sort(all)
	return legResult{
		perSec: float64(len(all)) / elapsed.Seconds(),
		p50:    all[len(all)/2],
		p99:    all[len(all)*99/100],
		allocs: float64(after.Mallocs-before.Mallocs) / float64(len(all)),
		bytes:  float64(after.TotalAlloc-before.TotalAlloc) / float64(len(all)),
		cpu:    cpu / time.Duration(len(all)),
	}
}

// typedCaller returns the op of one caller of the echo service on br,
// warmed up by callers concurrent calls.
func typedCaller(b *testing.B, br *memory.Broker, callers int) func(int) error {
	b.Helper()
	c := benchServer(b, br)
	ctx := context.Background()
	op := func(g int) error {
		req := benchReq{ID: g, Name: "report"}
		out, err := rpc.Call[benchReq](ctx, c, "bench", req)
		if err == nil && out != req {
			err = fmt.Errorf("echo answered %+v to %+v", out, req)
		}
		return err
	}
	runLeg(b, callers, callers, op) // warm up: topics, group, the first calls
	return op
}

// rawCaller returns the op of one caller of the raw echo on br: each
// caller tails a reply topic of its own (the transport-level equivalent of
// one pending call).
func rawCaller(b *testing.B, br *memory.Broker, callers int) func(int) error {
	b.Helper()
	rawEcho(b, br)
	ctx := context.Background()
	tails := make([]transport.Consumer, callers)
	topics := make([]string, callers)
	for g := range callers {
		topics[g] = fmt.Sprintf("raw.rep.%d", g)
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
	return func(g int) error {
		if _, err := br.Produce(ctx, transport.Message{Topic: "raw.req", Key: topics[g], Value: val}); err != nil {
			return err
		}
		for got := 0; got < 1; {
			msgs, err := tails[g].Poll(ctx)
			if err != nil {
				return err
			}
			got += len(msgs)
		}
		return nil
	}
}

func newBenchBroker(b *testing.B) *memory.Broker {
	b.Helper()
	br, err := memory.New(memory.WithPartitions(4), memory.WithRetention(10_000, 0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br
}

func BenchmarkCallVsRaw(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			call := typedCaller(b, newBenchBroker(b), callers)
			raw := rawCaller(b, newBenchBroker(b), callers)
			b.ResetTimer()
			c := runLeg(b, b.N, callers, call)
			r := runLeg(b, b.N, callers, raw)
			b.StopTimer()
			b.ReportMetric(c.perSec, "calls/s")
			b.ReportMetric(r.perSec, "raw-trips/s")
			b.ReportMetric(c.perSec/r.perSec, "call/raw")
			b.ReportMetric(float64(c.p50.Nanoseconds())/1e3, "call-p50-µs")
			b.ReportMetric(float64(c.p99.Nanoseconds())/1e3, "call-p99-µs")
			b.ReportMetric(float64(r.p50.Nanoseconds())/1e3, "raw-p50-µs")
			b.ReportMetric(float64(c.cpu.Nanoseconds())/1e3, "cpu-µs/call")
			b.ReportMetric(float64(r.cpu.Nanoseconds())/1e3, "cpu-µs/raw-trip")
			b.ReportMetric(float64(r.cpu)/float64(c.cpu), "cpu-raw/call")
			b.ReportMetric(c.allocs, "allocs/call")
			b.ReportMetric(r.allocs, "allocs/raw-trip")
			b.ReportMetric(c.bytes, "B/call")
			b.ReportMetric(r.bytes, "B/raw-trip")
		})
	}
}

func BenchmarkCallScaling(b *testing.B) {
	br := newBenchBroker(b)
	call := typedCaller(b, br, 4096)
	b.ResetTimer()
	few := runLeg(b, b.N, 1024, call)
	many := runLeg(b, b.N, 4096, call)
	raw := rawCaller(b, newBenchBroker(b), 4096)
	rawFew := runLeg(b, b.N, 1024, raw)
	rawMany := runLeg(b, b.N, 4096, raw)
	b.StopTimer()
	b.ReportMetric(few.perSec, "calls/s@1024")
	b.ReportMetric(many.perSec, "calls/s@4096")
	b.ReportMetric(many.perSec/few.perSec, "4096/1024")
	b.ReportMetric(float64(few.p99.Microseconds()), "p99-µs@1024")
	b.ReportMetric(float64(many.p99.Microseconds()), "p99-µs@4096")
	b.ReportMetric(float64(few.cpu.Nanoseconds())/1e3, "cpu-µs/call@1024")
	b.ReportMetric(float64(many.cpu.Nanoseconds())/1e3, "cpu-µs/call@4096")
	b.ReportMetric(rawMany.perSec/rawFew.perSec, "raw-4096/1024")
	b.ReportMetric(float64(rawFew.cpu.Nanoseconds())/1e3, "cpu-µs/raw-trip@1024")
	b.ReportMetric(float64(rawMany.cpu.Nanoseconds())/1e3, "cpu-µs/raw-trip@4096")
}
