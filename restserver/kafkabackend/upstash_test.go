package kafkabackend_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// The conformance suites of transport/upstash, with the REST server in
// front of Kafka (kfake, through the Kafka protocol) instead of the
// embedded broker: unchanged Upstash code on a Kafka cluster.

const (
	restPartitions = 3
	restMaxBytes   = 64 << 10
)

// restOverKafka starts kfake, the Kafka backend (creating topics on first
// use with restPartitions partitions, as the suites expect) and the REST
// server on loopback, and returns the server's URL.
func restOverKafka(tb testing.TB, opts ...restserver.Option) (string, *kafkatest.Cluster) {
	tb.Helper()
	c := kafkatest.Start(tb, kafkatest.Config{Backend: []kafkabackend.Option{kafkabackend.WithAutoCreateTopics(restPartitions)}})
	// Backend faults (5xx) are logged into the test's output.
	log := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelError}))
	rs, err := restserver.New(c.Backend, append([]restserver.Option{restserver.WithLogger(log)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return serve(tb, rs), c
}

// serve serves rs on loopback until tb ends.
func serve(tb testing.TB, rs *restserver.Server) string {
	hs := httptest.NewServer(rs)
	tb.Cleanup(func() {
		_ = rs.Close()
		hs.Close()
	})
	return hs.URL
}

func newUpstash(tb testing.TB, url string) *upstash.Transport {
	tb.Helper()
	tr, err := upstash.New(upstash.WithURL(url),
		upstash.WithBackoff(upstash.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 5 * time.Second}))
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

// TestUpstashConformanceOverKafka: rpctest.TestTransport through
// transport/upstash → kafka-rest → Kafka.
func TestUpstashConformanceOverKafka(t *testing.T) {
	rpctest.TestTransport(t, func(tb testing.TB) transport.Transport {
		url, _ := restOverKafka(tb, restserver.WithMaxMessageBytes(restMaxBytes))
		return newUpstash(tb, url)
	}, rpctest.Features{
		Partitions: restPartitions,
		Heartbeat:  true,
		// Feature difference: Kafka-Max-Poll-Interval-Ms is not enforced on
		// Kafka (kgo has no poll deadline); the REST server's instance
		// expiry closes idle instances instead.
		MaxPollInterval: false,
		// The REST API cannot tell a client of revocation.
		OnRevoked:       false,
		MaxMessageBytes: restMaxBytes,
	})
}

// TestUpstashRPCOverKafka: rpctest.TestRPC with every service a separate
// transport/upstash client of one kafka-rest in front of Kafka.
func TestUpstashRPCOverKafka(t *testing.T) {
	rpctest.TestRPC(t, func(tb testing.TB, n int) []transport.Transport {
		url, _ := restOverKafka(tb)
		out := make([]transport.Transport, n)
		for i := range out {
			tr := newUpstash(tb, url)
			tb.Cleanup(func() { _ = tr.Close() })
			out[i] = tr
		}
		return out
	})
}

// tbWriter writes log lines to tb.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
