package rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A sync behind 20,000 other instances' markers (twice the default window)
// must read them all well within dedupSyncTimeout, on the embedded broker
// (1,000 records a poll) and on Kafka (kfake, 500 records a poll).
func TestBreak9DedupSyncBehindALongBacklog(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		br, err := memory.New(memory.WithPartitions(1))
		require.NoError(t, err)
		t.Cleanup(func() { br.Close() })
		syncBehindBacklog(t, br)
	})
	t.Run("kfake", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
		require.NoError(t, err)
		t.Cleanup(c.Close)
		tr, err := kafka.New(kafka.Brokers(c.ListenAddrs()...), kafka.AutoCreateTopics(1, -1), kafka.PollWindow(100*time.Millisecond))
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		syncBehindBacklog(t, tr)
	})
}

func syncBehindBacklog(t *testing.T, tr transport.Transport) {
	s, err := NewServer(tr, WithName("sync9"), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dr, err := startDedupReader(ctx, s, s.dedup)
	require.NoError(t, err)
	readCtx, stopReading := context.WithCancel(ctx)
	dr.run(readCtx)
	defer func() { stopReading(); dr.stop() }()

	const n = 20_000
	batch := make([]transport.Message, 0, 1000)
	for i := range n {
		batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", fmt.Sprintf("req-%d", i), nil))
		if len(batch) == cap(batch) {
			_, err := tr.Produce(ctx, batch...)
			require.NoError(t, err)
			batch = batch[:0]
		}
	}
	start := time.Now()
	require.True(t, dr.sync(ctx), "the sync gave up before the reader read the backlog")
	took := time.Since(start)
	t.Logf("sync behind %d markers took %v", n, took)
	assert.Less(t, took, 2*time.Second)
	// The window keeps the newest defaultDedupSize markers.
	for _, id := range []string{fmt.Sprintf("req-%d", n-defaultDedupSize/2), fmt.Sprintf("req-%d", n-1)} {
		assert.True(t, s.dedup.has(id), "marker %s read before the sync returned", id)
	}
}
