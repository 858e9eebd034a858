package restserver

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkMetricsRequestPath is what the metrics add to one produce
// request: the route's status counter and latency histogram, and the
// topic's record and byte counters.
//
//	go test -run '^$' -bench Metrics -benchmem ./restserver/
func BenchmarkMetricsRequestPath(b *testing.B) {
	m := newMetrics()
	out := []transport.Message{{Topic: "orders", Key: "k", Value: []byte("0123456789")}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.produced(out)
			m.request("/produce/orders", 200, 300*time.Microsecond)
		}
	})
}

// BenchmarkMetricsScrape writes a scrape of 100 topics and 10 consumer
// instances.
func BenchmarkMetricsScrape(b *testing.B) {
	br, err := memory.New()
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	s, err := New(NewMemoryBackend(br), WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 100 {
		s.metrics.produced([]transport.Message{{Topic: "t" + strconv.Itoa(i), Value: []byte("x")}})
		s.metrics.request("/produce/t", 200, time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.writeMetrics(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRouteOf(t *testing.T) {
	for path, want := range map[string]string{
		"/produce/orders": "produce", "/produce": "produce", "/consume/g/i": "consume",
		"/healthz": "healthz", "/metrics": "metrics", "/": "other", "/../etc": "other", "/nope/x": "other",
	} {
		if got := metricRoutes[routeOf(path)]; got != want {
			t.Errorf("routeOf(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestQuoteLabel(t *testing.T) {
	for in, want := range map[string]string{`plain`: `"plain"`, `a"b`: `"a\"b"`, `a\b`: `"a\\b"`, "a\nb": `"a\nb"`} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}
