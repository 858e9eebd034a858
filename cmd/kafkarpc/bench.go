package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
)

var cmdBench = &command{
	name:  "bench",
	short: "calls/s and p50/p99 latency against a live service",
	args:  "TOPIC [JSON|-]",
	summary: "Call TOPIC from --concurrency callers for --duration (or --requests calls) and print calls/s and the p50 and p99 latency " +
		"of the calls answered, with a progress line on stderr while it runs. It measures a live service: start one first " +
		"(kafkarpc serve TOPIC --echo will do). Exits 1 if any call failed, with the count per error code.",
	example: `  kafkarpc bench reports '{"month":"2024-05"}' --concurrency 16 --duration 10s`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		var cf callFlags
		cf.register(fs, 10*time.Second)
		conc := fs.Int("concurrency", 8, "calls in flight at once")
		dur := fs.Duration("duration", 10*time.Second, "how long to run (ignored with --requests)")
		total := fs.Int("requests", 0, "stop after this many calls (default: run for --duration)")
		every := fs.Duration("progress", 500*time.Millisecond, "how often the progress line is updated")
		return func(ctx context.Context, e *env, args []string) error {
			topic, payload, err := topicAndPayload(e, args)
			if err != nil {
				return err
			}
			opts, err := cf.options()
			if err != nil {
				return err
			}
			if *conc < 1 || *total < 0 || *dur <= 0 || *every <= 0 {
				return usageErr("--concurrency must be at least 1, --requests not negative, --duration and --progress positive")
			}
			c, _, closeAll, err := newClient(e)
			if err != nil {
				return err
			}
			defer closeAll()
			// One call first: a service that is not there, or a topic that
			// is not, is one clear error rather than a run of failures.
			if _, err := c.Call(ctx, topic, payload, opts...); err != nil {
				if isTransportErr(err) {
					return transportErr(err)
				}
				return replyErr(fmt.Errorf("the first call failed: %w", err))
			}
			return runBench(ctx, e, c, topic, payload, opts, *conc, *dur, *total, *every)
		}
	},
}

// benchStats collects the latencies of answered calls and the failures.
type benchStats struct {
	mu     sync.Mutex
	lat    []time.Duration
	errs   map[string]int
	failed int
}

func (s *benchStats) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
		s.errs[rpc.CodeOf(err).String()]++
		return
	}
	s.lat = append(s.lat, d)
}

// snapshot returns the calls answered and failed, and p50 and p99 of the
// answered ones.
func (s *benchStats) snapshot() (ok, failed int, p50, p99 time.Duration) {
	s.mu.Lock()
	lat := append([]time.Duration(nil), s.lat...)
	failed = s.failed
	s.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return len(lat), failed, percentile(lat, 0.50), percentile(lat, 0.99)
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func runBench(ctx context.Context, e *env, c *rpc.Client, topic string, payload []byte, opts []rpc.CallOption,
	conc int, dur time.Duration, total int, every time.Duration) error {
	stats := &benchStats{errs: map[string]int{}}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if total == 0 {
		runCtx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	var next sync.Mutex
	issued := 0
	take := func() bool { // one more call to make?
		next.Lock()
		defer next.Unlock()
		if runCtx.Err() != nil || (total > 0 && issued >= total) {
			return false
		}
		issued++
		return true
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for take() {
				t0 := time.Now()
				// The call gets the parent context: a call in flight when
				// the duration ends is finished, not counted as failed.
				_, err := c.Call(ctx, topic, payload, opts...)
				stats.add(time.Since(t0), err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	progress := func(final bool) {
		ok, failed, p50, p99 := stats.snapshot()
		el := time.Since(start)
		end := "\r"
		if final {
			end = "\n"
		}
		fmt.Fprintf(e.stderr, "\r%6.1fs  %d calls  %d failed  %.0f calls/s  p50 %v  p99 %v   %s",
			el.Seconds(), ok, failed, float64(ok)/el.Seconds(), p50.Round(time.Microsecond), p99.Round(time.Microsecond), end)
	}
loop:
	for {
		select {
		case <-tick.C:
			progress(false)
		case <-done:
			break loop
		}
	}
	el := time.Since(start)
	progress(true)
	ok, failed, p50, p99 := stats.snapshot()
	rate := float64(ok) / el.Seconds()
	if e.g.json {
		printJSON(e.stdout, map[string]any{"kind": "bench", "topic": topic, "concurrency": conc, "calls": ok, "failed": failed,
			"errors": stats.errs, "seconds": el.Seconds(), "calls_per_sec": rate, "p50_ms": ms(p50), "p99_ms": ms(p99)})
	} else {
		fmt.Fprintf(e.stdout, "%d calls in %.2fs with %d callers: %.1f calls/s, p50 %v, p99 %v\n",
			ok, el.Seconds(), conc, rate, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
		if failed > 0 {
			fmt.Fprintf(e.stdout, "%d failed: %v\n", failed, stats.errs)
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted: what was measured is printed
	}
	if failed > 0 {
		return silent{exitReply}
	}
	return nil
}
