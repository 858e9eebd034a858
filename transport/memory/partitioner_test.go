package memory

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/transport"
)

func TestProduceKeyedLandsOnKafkaPartition(t *testing.T) {
	f := newFixture(t, WithTopic("keyed", 12))
	for range 3 { // stable: the same key lands on the same partition every time
		out := f.produce(t,
			transport.Message{Topic: "keyed", Key: "foobar", Value: []byte("1")},
			transport.Message{Topic: "keyed", Key: "abc", Value: []byte("2")},
			transport.Message{Topic: "keyed", Key: "a-little-bit-longer-string", Value: []byte("3")},
			transport.Message{Topic: "keyed", Key: "order-42", Value: []byte("4")},
		)
		assert.Equal(t, []int32{6, 3, 11, 0}, []int32{out[0].Partition, out[1].Partition, out[2].Partition, out[3].Partition})
	}
	// A caller's Partition is ignored without ManualPartition.
	out := f.produce(t, transport.Message{Topic: "keyed", Key: "foobar", Partition: 9})
	assert.Equal(t, int32(6), out[0].Partition)
}
