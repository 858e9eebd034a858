//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// The figures of issue 10, part 1, against the built kafka-rest binary
// with and without --data-dir, in one run:
//
//	go test -run '^$' -bench 'Durable' -benchtime 2s ./cmd/kafka-rest/
//
// KAFKA_REST_BENCH_RESTART_MB sets the data BenchmarkDurableRestart
// restarts with (default 64; the README's figure used 1024).

// storeArgs are the kafka-rest flags of each storage setting benchmarked.
func storeArgs(tb testing.TB, store string) []string {
	if store == "memory" {
		return nil
	}
	return []string{"--data-dir", tb.TempDir(), "--fsync", store}
}

// BenchmarkDurableProduce: POST /produce with arrays of 100 messages
// (≈100-byte values, keyed, one header) over 1 and 4 keep-alive
// connections, into kafka-rest in memory and with --data-dir under each
// fsync policy. One op is one HTTP request; msgs/s is the figure.
func BenchmarkDurableProduce(b *testing.B) {
	const batch = 100
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range batch {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"topic":"bench","key":"key-%d","value":"%s","headers":[{"key":"rpc-id","value":"0190d5b2-7c1e-7a55-9c1d-%012d"}]}`,
			i, strings.Repeat("v", 100), i)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())
	for _, store := range []string{"memory", "always", "interval=100ms", "never"} {
		for _, conns := range []int{1, 4} {
			b.Run(fmt.Sprintf("store=%s/conns=%d", store, conns), func(b *testing.B) {
				c := startBenchChild(b, append([]string{"--addr", "127.0.0.1:0", "--topics", "bench:8"}, storeArgs(b, store)...)...)
				tr := &http.Transport{MaxIdleConnsPerHost: conns}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr}
				post := func() error {
					resp, err := client.Post(c.url+"/produce", "application/json", bytes.NewReader(body))
					if err != nil {
						return err
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					return err
				}
				if err := post(); err != nil {
					b.Fatal(err)
				}
				var done atomic.Int64
				work := make(chan struct{})
				var wg sync.WaitGroup
				b.ResetTimer()
				for range conns {
					wg.Go(func() {
						for range work {
							if err := post(); err != nil {
								b.Error(err)
								return
							}
							done.Add(1)
						}
					})
				}
				for b.Loop() {
					work <- struct{}{}
				}
				close(work)
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(done.Load()*batch)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkDurableRPC: rpc calls (echo, small JSON) over kafka-rest in
// memory and with --data-dir (fsync always and interval=100ms), from 1 and
// 64 concurrent callers; calls/s is the figure.
func BenchmarkDurableRPC(b *testing.B) {
	for _, store := range []string{"memory", "always", "interval=100ms"} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("store=%s/callers=%d", store, callers), func(b *testing.B) {
				c := startBenchChild(b, append([]string{"--addr", "127.0.0.1:0", "--partitions", "4", "--retention-records", "10000"}, storeArgs(b, store)...)...)
				newTr := func() transport.Transport {
					tr, err := upstash.New(upstash.WithURL(c.url), upstash.WithLogger(quietLog))
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { tr.Close() })
					return tr
				}
				srv, err := rpc.NewServer(newTr(), rpc.WithName("bench-srv"), rpc.WithLogger(quietLog), rpc.WithConcurrency(max(16, callers)))
				if err != nil {
					b.Fatal(err)
				}
				rpc.Handle(srv, "echo", func(_ context.Context, n int) (int, error) { return n, nil })
				ctx, cancel := context.WithCancel(context.Background())
				served := make(chan error, 1)
				go func() { served <- srv.Serve(ctx) }()
				defer func() { cancel(); <-served }()
				cli, err := rpc.NewClient(newTr(), rpc.WithName("bench-cli"), rpc.WithLogger(quietLog))
				if err != nil {
					b.Fatal(err)
				}
				defer cli.Close()
				var wg sync.WaitGroup
				for i := range callers { // warm up
					wg.Go(func() {
						if _, err := rpc.Call[int](ctx, cli, "echo", i); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				var next atomic.Int64
				var failed atomic.Bool
				b.ResetTimer()
				for g := range callers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) && !failed.Load() {
							got, err := rpc.Call[int](ctx, cli, "echo", g)
							if err == nil && got != g {
								err = errors.New("wrong echo")
							}
							if err != nil {
								failed.Store(true)
								b.Error(err)
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			})
		}
	}
}

// BenchmarkDurableRestart: the time from starting kafka-rest on a data dir
// holding KAFKA_REST_BENCH_RESTART_MB MiB of records (16 partitions,
// 1 KiB values, written by the same storage code in this process) to its
// listening, per op.
func BenchmarkDurableRestart(b *testing.B) {
	mb := 64
	if s := os.Getenv("KAFKA_REST_BENCH_RESTART_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb <= 0 {
			b.Fatalf("KAFKA_REST_BENCH_RESTART_MB=%q: want a positive number", s)
		}
	}
	const parts, valueSize = 16, 1024
	dir := b.TempDir()
	perPart := int64(mb) << 20 / parts
	retention := []string{"--retention-bytes", strconv.FormatInt(2*perPart, 10), "--retention-records", "100000000"}
	broker, err := memory.NewDurable(dir, memory.WithFsync(memory.FsyncNever()), memory.WithRetention(100_000_000, 2*perPart), memory.WithLogger(quietLog))
	if err != nil {
		b.Fatal(err)
	}
	if err := broker.CreateTopic("data", parts); err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("x"), valueSize)
	batch := make([]transport.Message, 100)
	var written int64
	for written < int64(mb)<<20 {
		for i := range batch {
			batch[i] = transport.Message{Topic: "data", Key: strconv.FormatInt(written+int64(i), 10), Value: value}
		}
		if _, err := broker.Produce(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
		written += int64(len(batch) * valueSize)
	}
	if err := broker.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		c := startChildWithin(b, true, 10*time.Minute, append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, retention...)...)
		total += time.Since(t0)
		b.StopTimer()
		c.stop()
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/restart")
	b.ReportMetric(float64(mb), "MiB")
}
