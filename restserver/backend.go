package restserver

import (
	"context"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Backend is the broker behind a [Server]: a [transport.Transport] plus the
// admin calls the REST API needs (topic list, offsets, group-free fetch,
// committed offsets). The HTTP layer talks to it only through this
// interface, so a backend for a real Kafka cluster is a Kafka transport with
// those calls added. [NewMemoryBackend] adapts the embedded broker of
// package transport/memory.
//
// The Server produces with Produce (with the contract of
// [transport.Transport.Produce]: all or none, ManualPartition honoured, zero
// Time means now, unknown topics created only if the backend auto-creates)
// and makes one consumer group member per REST consumer instance with
// Subscribe, joined with Instance = the instance name (static membership).
// Every Consumer that Subscribe returns must also implement [Member]; the
// Server closes one that does not and answers 500.
//
// Implementations must be safe for concurrent use. Errors should wrap the
// sentinels of package transport where they apply, because the server turns
// them into HTTP statuses: [transport.ErrUnknownTopic] → 404,
// [transport.ErrMessageTooLarge] → 413, [transport.ErrInvalid] and
// [transport.ErrNotAssigned] → 400, [transport.ErrClosed] and [ErrUnavailable]
// → 503 (with Retry-After: 1 for ErrUnavailable), any other
// error → 500. A context error returned because ctx ended is expected and is
// not reported as a fault.
//
// The server never closes its Backend: whoever made it closes it, after the
// server.
type Backend interface {
	transport.Transport

	// Topics returns every topic with its partition count.
	Topics(ctx context.Context) (map[string]int32, error)

	// Fetch returns up to max records of one partition starting at from,
	// without a consumer group. When no record at or after from exists
	// yet, it waits until one is appended or ctx ends (then it returns
	// ctx.Err()).
	Fetch(ctx context.Context, from transport.Offset, max int) ([]transport.Message, error)

	// WaitAny waits until one of the partitions of from has a record at or
	// after its offset (it returns nil at once if one has), or ctx ends
	// (it returns ctx.Err()). It must not start work per partition that
	// outlives the call: a /fetch may name a thousand partitions.
	WaitAny(ctx context.Context, from []transport.Offset) error

	// Offsets returns the first retained offset of a partition and the
	// offset the next record will get (the high watermark).
	Offsets(ctx context.Context, tp transport.TopicPartition) (earliest, latest int64, err error)

	// OffsetForTime returns the earliest offset of a partition whose record
	// time is at or after t.
	OffsetForTime(ctx context.Context, tp transport.TopicPartition, t time.Time) (int64, error)

	// Committed returns the offset group committed for a partition, or -1
	// if it has none.
	Committed(ctx context.Context, group string, tp transport.TopicPartition) (int64, error)
}

// CommittedLister is an optional method of a [Backend]: the committed
// offsets of many partitions of one group in one call, where Committed
// would take one round trip to the broker per partition.
//
// ListCommitted returns a slice as long as tps: out[i] is the offset group
// committed for tps[i], or -1 if it has none (all -1 when the group does
// not exist), as Committed would answer. tps may name several topics and
// repeat a partition. Any partition's failure fails the call (nil
// slice), with the error Committed would return for it (the first such
// partition of tps, where the backend can tell): an unknown topic wraps
// [transport.ErrUnknownTopic], a partition out of range
// [transport.ErrInvalid]. Like every Backend method, it is safe for
// concurrent use.
//
// The server uses it wherever it looks up more than one partition's
// committed offset (/committed, the consumer lag of /metrics, a consume's
// checks of Kafka-Auto-Offset-Reset: none, an answer sent again); a
// backend without it is asked with Committed, several partitions at once.
type CommittedLister interface {
	ListCommitted(ctx context.Context, group string, tps []transport.TopicPartition) ([]int64, error)
}

// OffsetsLister is an optional method of a [Backend]: the first retained
// or the next offsets of many partitions in one call, where Offsets would
// take one round trip to the broker per partition (two ListOffsets
// requests on Kafka: the start and the end).
//
// ListOffsets returns a slice as long as tps: out[i] is the first retained
// offset of tps[i] when earliest is true, else the offset its next record
// will get (the high watermark), as Offsets would answer. tps may name
// several topics and repeat a partition. Any partition's failure fails the
// call (nil slice), with the error Offsets would return for it: an unknown
// topic wraps [transport.ErrUnknownTopic], a partition out of range
// [transport.ErrInvalid]. Like every Backend method, it is safe for
// concurrent use.
//
// The server uses it wherever it looks up more than one partition's
// offsets (the consumer lag of /metrics, /offsets/earliest and
// /offsets/latest, a /fetch); a backend without it is asked with Offsets,
// several partitions at once.
type OffsetsLister interface {
	ListOffsets(ctx context.Context, tps []transport.TopicPartition, earliest bool) ([]int64, error)
}

// CommittedSubscriber is an optional method of a [Backend]: the join of a
// consumer instance whose Kafka-Auto-Offset-Reset is none, which must not
// start a partition that has no committed offset.
//
// SubscribeCommitted is Subscribe, except for the partitions of the
// member's first assignment without a committed offset, or with one past
// the partition's end or before its earliest retained offset (out of
// range: Kafka with auto.offset.reset none fails the fetch): it fixes no start
// for them (where Subscribe may commit the offset such a partition starts
// at, or the broker keep it, so that the partition stays there when it
// moves), and when there is one it returns them, sorted, with a nil
// Consumer, having left the group (or not joined it): nothing is read,
// committed or skipped on their behalf, and the server answers 400.
// Partitions the member gets in later rebalances start by sub.Start, as
// with Subscribe. The Consumer it returns implements [Member].
//
// A backend without it is joined with Subscribe, and the server then looks
// up the committed, earliest and end offsets of the member's partitions: right only
// for a backend whose Subscribe fixes no start by a commit.
type CommittedSubscriber interface {
	SubscribeCommitted(ctx context.Context, sub transport.Subscription) (c transport.Consumer, uncommitted []transport.TopicPartition, err error)
}

// Member is what a REST consumer instance needs of its group member: a
// [transport.Consumer] plus the REST API's own commits. The server never
// calls Poll concurrently on one Member; the other methods may run
// concurrently with Poll.
//
// Liveness is the member's own business, as for any transport.Consumer: it
// heartbeats while open (Subscription.SessionTimeout, from the instance's
// Kafka-Session-Timeout-Ms) and is dropped when it does not Poll for
// Subscription.MaxPollInterval; its next Poll rejoins. A commit by a dropped
// member must fail with an error wrapping [transport.ErrNotAssigned].
type Member interface {
	transport.Consumer

	// CommitOffsets stores the offsets exactly as given as the group's
	// committed offsets (the next offset to read, in Kafka's meaning). An
	// offset past the end of its partition is stored; the partition's next
	// owner resets it by its Subscription.Start, as Kafka does.
	CommitOffsets(ctx context.Context, offsets ...transport.Offset) error

	// CommitOffsetsFenced is CommitOffsets, but an offset below where the
	// member's current assignment of its partition began is refused with
	// an error wrapping transport.ErrNotAssigned: it can only come from work
	// done before the partition moved away and came back. Kafka refuses such
	// a commit by its generation; the REST API has none, so a client asks
	// for this with the Kafka-Commit-Fenced header.
	CommitOffsetsFenced(ctx context.Context, offsets ...transport.Offset) error

	// CommitPositions commits the member's current positions: the offsets
	// after the last records Poll returned.
	CommitPositions(ctx context.Context) error

	// Assignment returns the partitions the member owns now, by topic.
	Assignment() map[string][]int32
}
