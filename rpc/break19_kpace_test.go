package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// The dedup reader on Kafka (kfake) keeps pace with markers written at a
// steady rate, a few at a time, as servers write them (one per reply).
func TestBreak19DedupReaderKeepsPaceOnKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	tr, err := kafka.New(kafka.Brokers(c.ListenAddrs()...), kafka.AutoCreateTopics(1, -1), kafka.PollWindow(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	s, _ := followingReaderOn(t, tr, "kpace", WithDedup(1_000_000, 10*time.Minute))
	ctx := context.Background()

	// 20 markers every 10 ms (2,000 a second) for 2 s.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last string
	batch := make([]transport.Message, 0, 20)
	for r := range 200 {
		<-tick.C
		batch = batch[:0]
		for i := range 20 {
			last = fmt.Sprintf("req-%d-%d", r, i)
			batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", last, nil))
		}
		_, err := tr.Produce(ctx, batch...)
		require.NoError(t, err)
	}
	start := time.Now()
	require.Eventually(t, func() bool { return s.dedup.has(last) }, 3*time.Second, 5*time.Millisecond,
		"the reader lags behind the markers written while it follows")
	t.Logf("caught up %v after the last write", time.Since(start))
}
