package restserver

import (
	"context"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Backend is the broker behind a [Server]. The HTTP layer talks to it only
// through this interface, so a backend for a real Kafka cluster can be added
// without touching the HTTP code. [NewMemoryBackend] adapts the embedded
// broker of package transport/memory.
//
// Implementations must be safe for concurrent use. Errors should wrap the
// sentinels of package transport where they apply, because the server turns
// them into HTTP statuses: [transport.ErrUnknownTopic] → 404,
// [transport.ErrMessageTooLarge] → 413, [transport.ErrInvalid] and
// [transport.ErrNotAssigned] → 400, [transport.ErrClosed] → 503, any other
// error → 500. A context error returned because ctx ended is expected and is
// not reported as a fault.
//
// The server never closes its Backend: whoever made it closes it, after the
// server.
type Backend interface {
	// Topics returns every topic with its partition count.
	Topics(ctx context.Context) (map[string]int32, error)

	// Produce appends msgs in order and returns them with Partition,
	// Offset and Time filled in, with the contract of
	// [transport.Transport.Produce] (all or none; ManualPartition honoured;
	// zero Time means now; unknown topics are created only if the backend
	// auto-creates).
	Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error)

	// Fetch returns up to max records of one partition starting at offset,
	// without a consumer group. When no record at or after offset exists
	// yet, it waits until one is appended or ctx ends (then it returns
	// ctx.Err()).
	Fetch(ctx context.Context, topic string, partition int32, offset int64, max int) ([]transport.Message, error)

	// Offsets returns the first retained offset and the offset the next
	// record will get (the high watermark).
	Offsets(ctx context.Context, topic string, partition int32) (earliest, latest int64, err error)

	// OffsetForTime returns the earliest offset whose record time is at or
	// after t.
	OffsetForTime(ctx context.Context, topic string, partition int32, t time.Time) (int64, error)

	// Committed returns the offset group committed for the partition, or
	// -1 if it has none.
	Committed(ctx context.Context, group, topic string, partition int32) (int64, error)

	// Join makes a consumer group member, with the contract of
	// [transport.Transport.Subscribe]: when Join returns the member's
	// starting positions are fixed, and a second member with the same
	// Instance replaces (fences) the first.
	Join(ctx context.Context, s transport.Subscription) (Member, error)
}

// Member is one consumer group member made by [Backend.Join]. The server uses
// one Member per REST consumer instance and never calls Poll concurrently on
// one Member; CommitOffsets, CommitPositions and Assignment may run
// concurrently with Poll.
type Member interface {
	// Poll waits until records are available on the member's partitions
	// and returns them, advancing the member's positions past them. It may
	// return an empty slice and nil error before ctx ends; it returns
	// ctx.Err() when ctx ends first.
	Poll(ctx context.Context) ([]transport.Message, error)

	// CommitOffsets stores the offsets exactly as given as the group's
	// committed offsets (the next offset to read, in Kafka's meaning).
	CommitOffsets(ctx context.Context, offsets ...TopicPartitionOffset) error

	// CommitPositions commits the member's current positions: the offsets
	// after the last records Poll returned.
	CommitPositions(ctx context.Context) error

	// Assignment returns the partitions the member owns now, by topic.
	Assignment() map[string][]int32

	// Close leaves the group at once without committing. Idempotent.
	Close() error
}

// TopicPartitionOffset names an offset in one partition of a topic.
type TopicPartitionOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}
