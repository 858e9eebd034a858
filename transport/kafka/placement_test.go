package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The same keys land on the same partitions through the embedded broker,
// through this transport, and through franz-go's default partitioner (which
// is Java's): Kafka's murmur2, an empty key being unkeyed.
func TestKeyPlacementMatchesEmbeddedBrokerAndFranzGo(t *testing.T) {
	brokers := cluster(t)
	tr := newTransport(t, brokers)
	mem, err := memory.New(memory.WithPartitions(testPartitions))
	require.NoError(t, err)
	defer mem.Close()
	raw, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	require.NoError(t, err)
	defer raw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := fmt.Sprintf("placement-%d", time.Now().UnixNano())
	var msgs []transport.Message
	for i := range 200 {
		msgs = append(msgs, transport.Message{Topic: topic, Key: fmt.Sprintf("key-%d-%s", i, string(rune('a'+i%26))), Value: []byte("v")})
	}
	msgs = append(msgs, transport.Message{Topic: topic, Key: "é"}, transport.Message{Topic: topic, Key: "a-little-bit-longer-string"})
	viaKafka, err := tr.Produce(ctx, msgs...)
	require.NoError(t, err)
	viaMemory, err := mem.Produce(ctx, msgs...)
	require.NoError(t, err)
	spread := map[int32]int{}
	for i, m := range msgs {
		r := &kgo.Record{Topic: topic, Key: []byte(m.Key), Value: m.Value}
		require.NoError(t, raw.ProduceSync(ctx, r).FirstErr())
		require.Equal(t, viaMemory[i].Partition, viaKafka[i].Partition, "key %q: embedded broker vs transport/kafka", m.Key)
		require.Equal(t, r.Partition, viaKafka[i].Partition, "key %q: franz-go's default partitioner vs transport/kafka", m.Key)
		spread[viaKafka[i].Partition]++
	}
	require.Len(t, spread, testPartitions, "200 keys cover every partition")
}
