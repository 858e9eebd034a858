package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// BUG (fixed): Tailer promises "a record produced after Tail returns is delivered by its
// Poll" for every partition of the topics. The Kafka tail consumes the
// partitions listed at Tail time (kgo.ConsumePartitions with exact end
// offsets), so a partition added to the topic afterwards is never read: a
// reply produced to it (the server's producer places keyed replies by
// murmur2 % the new count once its 10 s metadata cache expires) is lost and
// the rpc call times out.
func TestBreak5TailPartitionAddedLater(t *testing.T) {
	brokers := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := newTransport(t, brokers, kafka.PollWindow(100*time.Millisecond))
	topic := "b5tail-" + uuid.NewString()[:8]
	_, err := tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("create")})
	require.NoError(t, err)

	tail, err := tr.Tail(ctx, topic)
	require.NoError(t, err)
	defer tail.Close()

	adm := kadm.NewClient(mustClient(t, brokers))
	resp, err := adm.CreatePartitions(ctx, 1, topic)
	require.NoError(t, err)
	require.NoError(t, resp[topic].Err)

	// A fresh transport (another process) sees the new partition at once.
	prod := newTransport(t, brokers)
	_, err = prod.Produce(ctx, transport.Message{Topic: topic, Partition: testPartitions, ManualPartition: true, Value: []byte("reply")})
	require.NoError(t, err)

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ms, err := tail.Poll(ctx)
		require.NoError(t, err)
		for _, m := range ms {
			if string(m.Value) == "reply" {
				return
			}
		}
	}
	t.Fatalf("record produced after Tail to partition %d (added after Tail) never delivered", testPartitions)
}
