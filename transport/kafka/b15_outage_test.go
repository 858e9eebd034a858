package kafka_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// linesAt returns the lines of a text log at level ("WARN", "INFO").
func linesAt(log, level string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level="+level) {
			out = append(out, l)
		}
	}
	return out
}

// TestB15BrokerOutageWarnsOnce: a broker that goes away while the
// transport is in use is a warning in WithLogger's log, once per outage
// however many requests and reconnections it fails (franz-go retries them
// silently, as transport/upstash retries its requests), naming the broker
// and the error; an info line says when it answers again, and a second
// outage is warned about again. transport/kafka had no logger: an outage
// was silent until a caller's deadline ran out.
func TestB15BrokerOutageWarnsOnce(t *testing.T) {
	// Each cluster has its own topic: a topic of the first one is unknown
	// to the second (another topic id).
	start := func(port int, topic string) *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.Ports(port))
		require.NoError(t, err)
		t.Cleanup(c.Close) // idempotent
		return c
	}
	topic := "t"
	c := start(0, topic)
	addr := c.ListenAddrs()[0]
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)

	var buf testutil.SyncBuffer
	tr, err := kafka.New(kafka.Brokers(addr), kafka.WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		// Quick retries: many failed connections in each outage.
		kafka.ClientOpts(kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond })))
	require.NoError(t, err)
	defer tr.Close()
	produce := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		_, err := tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("v")})
		return err
	}
	require.NoError(t, produce(5*time.Second))
	require.Empty(t, linesAt(buf.String(), "WARN"), buf.String())

	outage := func() {
		t.Helper()
		c.Close()
		for range 2 {
			require.Error(t, produce(150*time.Millisecond))
		}
	}
	outage()
	log := buf.String()
	warns := linesAt(log, "WARN")
	require.Len(t, warns, 1, "one warning for the outage: %s", log)
	assert.Contains(t, warns[0], addr)
	assert.Contains(t, warns[0], "connection refused")
	assert.Contains(t, log, "level=DEBUG msg=\"kafka: cannot connect to broker\"", "later failures at debug")

	// Back on the same port: it answers again.
	topic = "t2"
	c = start(port, topic)
	require.Eventually(t, func() bool { return produce(2*time.Second) == nil }, 10*time.Second, 10*time.Millisecond)
	require.Len(t, linesAt(buf.String(), "INFO"), 1, buf.String())
	assert.Contains(t, linesAt(buf.String(), "INFO")[0], "answers again")

	outage()
	assert.Len(t, linesAt(buf.String(), "WARN"), 2, "a second outage, a second warning: %s", buf.String())
}
