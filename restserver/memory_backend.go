package restserver

import (
	"context"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// NewMemoryBackend adapts the embedded broker to [Backend]. Topic creation,
// auto-creation, partition counts, retention and the broker's own message
// size limit are the broker's options (see memory.New). The caller keeps
// ownership of b and closes it after the server.
func NewMemoryBackend(b *memory.Broker) Backend {
	return memoryBackend{b: b}
}

type memoryBackend struct{ b *memory.Broker }

func (m memoryBackend) Topics(context.Context) (map[string]int32, error) {
	return m.b.Topics(), nil
}

func (m memoryBackend) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	return m.b.Produce(ctx, msgs...)
}

func (m memoryBackend) Fetch(ctx context.Context, topic string, partition int32, offset int64, max int) ([]transport.Message, error) {
	return m.b.Fetch(ctx, topic, partition, offset, max)
}

func (m memoryBackend) Offsets(_ context.Context, topic string, partition int32) (int64, int64, error) {
	return m.b.Offsets(topic, partition)
}

func (m memoryBackend) OffsetForTime(_ context.Context, topic string, partition int32, t time.Time) (int64, error) {
	return m.b.OffsetForTime(topic, partition, t)
}

func (m memoryBackend) Committed(_ context.Context, group, topic string, partition int32) (int64, error) {
	return m.b.Committed(group, topic, partition)
}

func (m memoryBackend) Join(ctx context.Context, s transport.Subscription) (Member, error) {
	c, err := m.b.Join(ctx, s)
	if err != nil {
		return nil, err
	}
	return memoryMember{c: c}, nil
}

type memoryMember struct{ c *memory.Consumer }

func (m memoryMember) Poll(ctx context.Context) ([]transport.Message, error) { return m.c.Poll(ctx) }

func (m memoryMember) CommitOffsets(ctx context.Context, offsets ...TopicPartitionOffset) error {
	offs := make([]memory.Offset, len(offsets))
	for i, o := range offsets {
		offs[i] = memory.Offset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
	}
	return m.c.CommitOffsets(ctx, offs...)
}

func (m memoryMember) CommitPositions(ctx context.Context) error { return m.c.CommitPositions(ctx) }

func (m memoryMember) Assignment() map[string][]int32 { return m.c.Assignment() }

func (m memoryMember) Close() error { return m.c.Close() }
