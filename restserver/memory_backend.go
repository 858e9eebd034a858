package restserver

import (
	"context"
	"errors"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// NewMemoryBackend adapts the embedded broker to [Backend]: the broker is
// the transport (its *memory.Consumer is the [Member]); the adapter only
// gives its admin calls the Backend's signatures. Topic creation,
// auto-creation, partition counts, retention and the broker's own message
// size limit are the broker's options (see memory.New). The caller keeps
// ownership of b and closes it after the server.
func NewMemoryBackend(b *memory.Broker) Backend {
	return memoryBackend{b}
}

type memoryBackend struct{ *memory.Broker }

var (
	_ Member              = (*memory.Consumer)(nil)
	_ CommittedLister     = memoryBackend{}
	_ CommittedSubscriber = memoryBackend{}
	_ OffsetsLister       = memoryBackend{}
)

// producesAtOnce marks the embedded broker as an instantProducer: its
// Produce and Fetch ask their context's Err and never wait.
func (memoryBackend) producesAtOnce() {}

func (m memoryBackend) Topics(context.Context) (map[string]int32, error) {
	return m.Broker.Topics(), nil
}

func (m memoryBackend) Fetch(ctx context.Context, from transport.Offset, max int) ([]transport.Message, error) {
	return m.Broker.Fetch(ctx, from.Topic, from.Partition, from.Offset, max)
}

func (m memoryBackend) WaitAny(ctx context.Context, from []transport.Offset) error {
	return m.Broker.WaitAny(ctx, from)
}

func (m memoryBackend) Offsets(_ context.Context, tp transport.TopicPartition) (int64, int64, error) {
	return m.Broker.Offsets(tp.Topic, tp.Partition)
}

func (m memoryBackend) OffsetForTime(_ context.Context, tp transport.TopicPartition, t time.Time) (int64, error) {
	return m.Broker.OffsetForTime(tp.Topic, tp.Partition, t)
}

func (m memoryBackend) Committed(_ context.Context, group string, tp transport.TopicPartition) (int64, error) {
	return m.Broker.Committed(group, tp.Topic, tp.Partition)
}

// ListCommitted makes the embedded broker a [CommittedLister]: its
// Committed never waits, so this is Committed of each partition in turn.
func (m memoryBackend) ListCommitted(_ context.Context, group string, tps []transport.TopicPartition) ([]int64, error) {
	out := make([]int64, len(tps))
	for i, tp := range tps {
		off, err := m.Broker.Committed(group, tp.Topic, tp.Partition)
		if err != nil {
			return nil, err
		}
		out[i] = off
	}
	return out, nil
}

// ListOffsets makes the embedded broker an [OffsetsLister]: its Offsets
// never waits, so this is Offsets of each partition in turn.
func (m memoryBackend) ListOffsets(_ context.Context, tps []transport.TopicPartition, earliest bool) ([]int64, error) {
	out := make([]int64, len(tps))
	for i, tp := range tps {
		first, next, err := m.Broker.Offsets(tp.Topic, tp.Partition)
		if err != nil {
			return nil, err
		}
		out[i] = next
		if earliest {
			out[i] = first
		}
	}
	return out, nil
}

// SubscribeCommitted makes the embedded broker a [CommittedSubscriber]:
// its join fixes where the group starts each partition without a
// committed offset, so a refused one must not join at all.
func (m memoryBackend) SubscribeCommitted(ctx context.Context, sub transport.Subscription) (transport.Consumer, []transport.TopicPartition, error) {
	return m.Broker.SubscribeCommitted(ctx, sub)
}

// Ready reports whether the broker is open. The broker has no accessor for
// that; every call of a closed broker fails with transport.ErrClosed
// before looking at its arguments, so an Offsets call of no topic tells.
func (m memoryBackend) Ready(context.Context) error {
	_, _, err := m.Broker.Offsets("", 0)
	if errors.Is(err, transport.ErrClosed) {
		return err
	}
	return nil
}
