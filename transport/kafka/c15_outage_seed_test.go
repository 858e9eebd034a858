package kafka_test

import (
	"context"
	"log/slog"
	"net"
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

// TestC15BrokerOutageUnderASeedNameWarnsOnce: a broker named in Brokers
// by another name than the one the cluster advertises (localhost against
// 127.0.0.1, as a bootstrap address against a broker's own) is one
// broker: its outage is one warning, under the advertised name. The
// seed's connections were counted as another broker's: two warnings for
// one outage.
func TestC15BrokerOutageUnderASeedNameWarnsOnce(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close) // idempotent
	addr := c.ListenAddrs()[0]
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)

	var buf testutil.SyncBuffer
	tr, err := kafka.New(kafka.Brokers(net.JoinHostPort("localhost", port)),
		kafka.WithLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		kafka.ClientOpts(kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond })))
	require.NoError(t, err)
	defer tr.Close()
	produce := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
		return err
	}
	require.NoError(t, produce(5*time.Second))
	require.Empty(t, linesAt(buf.String(), "WARN"), buf.String())

	c.Close()
	for range 3 {
		require.Error(t, produce(150*time.Millisecond))
	}
	log := buf.String()
	warns := linesAt(log, "WARN")
	require.Len(t, warns, 1, "one warning for the outage: %s", log)
	assert.Contains(t, warns[0], addr)
}
