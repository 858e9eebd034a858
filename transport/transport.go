// Package transport is the seam between kafkarpc's rpc layer and the systems
// that carry its records: the embedded broker (transport/memory), the Upstash
// Kafka REST API (transport/upstash) and, later, native Kafka.
//
// The package holds types and contracts only and imports nothing but the
// standard library. A transport implements [Transport]; optional capabilities
// (such as [Tailer]) are discovered with a type assertion.
//
// Every transport must pass the conformance suite in package rpctest, which
// turns each rule written in the doc comments below into a test.
package transport

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Header is one record header. Keys need not be unique; order is kept.
type Header struct {
	Key   string
	Value string
}

// Message is one Kafka record.
//
// On Produce, the caller fills Topic, Key, Value and Headers. The broker picks
// the partition from Key (a stable hash, the same key always lands on the same
// partition of a topic) or, for an empty key, spreads keyless records over the
// partitions; set ManualPartition to use Partition as given instead. A zero
// Time is set by the broker to the append time (millisecond precision).
// Offset is ignored on input.
//
// Messages returned by Produce, Poll or Fetch are fully filled in. Their Value
// and Headers may share memory with the broker: treat them as read-only.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Time      time.Time
	Key       string
	Value     []byte
	Headers   []Header

	// ManualPartition makes Produce use Partition as given instead of
	// choosing one from Key. It is false on messages returned by a transport.
	ManualPartition bool
}

// Header returns the value of the first header named key, and whether one
// was found.
func (m *Message) Header(key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// Start says where a consumer group begins reading a partition for which it
// has no committed offset. The zero value is StartLatest, as in Kafka.
type Start int

const (
	// StartLatest begins after the last record present when the group first
	// reads the partition: only records produced later are delivered.
	StartLatest Start = iota
	// StartEarliest begins at the oldest retained record.
	StartEarliest
)

// String returns "latest" or "earliest".
func (s Start) String() string {
	switch s {
	case StartLatest:
		return "latest"
	case StartEarliest:
		return "earliest"
	}
	return "start(" + strconv.Itoa(int(s)) + ")"
}

// Subscription names a consumer group member and what it reads.
type Subscription struct {
	// Group is the consumer group. Members of one group share the
	// partitions of its topics: each partition is read by one member at a
	// time. Required.
	Group string
	// Instance identifies this member within the group. A new member with
	// the Instance of a live one replaces it (static membership): the old
	// Consumer's Poll fails with ErrFenced. Empty means a unique id is
	// generated.
	Instance string
	// Topics to read. Required, at least one.
	Topics []string
	// Start applies to partitions the group has no committed offset for.
	Start Start
	// SessionTimeout is how long a member may go without a sign of life
	// before the group drops it and hands its partitions to the other
	// members. A transport keeps an open Consumer alive by itself
	// (heartbeats, as Kafka clients do), whether or not it is polling: a
	// busy member is not a dead one. Zero means the transport's default.
	SessionTimeout time.Duration
	// MaxPollInterval is the longest a member may go between Polls (a Poll
	// in progress counts as polling) before the group considers it stuck,
	// drops it and hands its partitions to the other members (Kafka's
	// max.poll.interval.ms). A dropped member's Commit fails with
	// ErrNotAssigned; its next Poll rejoins. Zero means the transport's
	// default (5 minutes, as in Kafka).
	MaxPollInterval time.Duration
	// OnRevoked, when not nil, is called with the partitions the member
	// stops owning while it is open: handed to another member in a
	// rebalance, or dropped with the member (session or poll interval
	// expired). It is not called for Close or when the member is fenced.
	// Records polled from those partitions and not yet handled must not be
	// handled any more: their next owner reads them again from the
	// committed offset, and a Commit naming them fails with ErrNotAssigned.
	//
	// It may be called from a transport goroutine while the transport holds
	// internal locks: it must return quickly and must not call the
	// Consumer's methods (each transport documents what it holds). A
	// transport that cannot learn of revocation (the REST API has no such
	// signal) documents that it never calls it; there, Commit's
	// ErrNotAssigned is the only sign.
	OnRevoked func(partitions []TopicPartition)
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a position in one partition of a topic. Where it is committed,
// Offset is the next offset to read, as in Kafka.
type Offset struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Transport produces records and creates consumers.
//
// Implementations are safe for concurrent use. After Close, every method
// returns an error that wraps ErrClosed; Close itself is idempotent.
type Transport interface {
	// Produce appends msgs, in order, and returns them with Partition,
	// Offset and Time filled in. It either appends all of msgs or, on error,
	// none that it can know of (a transport that loses a response may not
	// know). Errors wrap ErrInvalid (empty topic, partition out of range),
	// ErrUnknownTopic, ErrMessageTooLarge, ErrUnavailable or ErrClosed
	// where those apply.
	Produce(ctx context.Context, msgs ...Message) ([]Message, error)

	// Subscribe joins a consumer group. When Subscribe returns, the
	// member's starting positions are fixed: a record produced afterwards
	// to a subscribed topic is delivered to some member of the group. A
	// missing Group or Topics, or an empty topic name, is ErrInvalid; a
	// server that could not be reached until ctx's deadline, ErrUnavailable.
	Subscribe(ctx context.Context, s Subscription) (Consumer, error)

	// Close releases the transport. Consumers it created stop working.
	Close() error
}

// Consumer is one member of a consumer group (or a group-free reader made by
// a Tailer).
//
// Poll and Commit may be called from different goroutines, but Poll is meant
// to be called by one goroutine at a time: concurrent Polls split the records
// between them in no defined way.
type Consumer interface {
	// Poll waits until records are available on the member's partitions and
	// returns them, in offset order per partition. It returns early with an
	// empty slice and nil error when the transport's own poll window ends
	// without data: an empty result is not the end of the stream. It returns
	// ctx.Err() when ctx ends first. After Close it returns an error wrapping
	// ErrClosed; after being replaced, one wrapping ErrFenced; a Poll blocked
	// at that moment returns so promptly. A Poll that returns an error has
	// taken no records: a canceled Poll loses nothing.
	//
	// Records that were polled but not committed are delivered again to the
	// partition's next owner after a rebalance (a member leaving, closing or
	// timing out).
	Poll(ctx context.Context) ([]Message, error)

	// Commit marks msgs as handled: for each partition it stores
	// (highest offset among msgs) + 1 as the group's next offset to read.
	// Committing a partition the member does not own (taken by another
	// member, or of a topic it never read) fails with an error wrapping
	// ErrNotAssigned and changes nothing; so does a commit below the offset
	// where the member's current assignment of the partition began, which
	// can only come from work done before the partition moved away and came
	// back (transports that cannot tell may accept it). Commit with no msgs
	// is a no-op.
	Commit(ctx context.Context, msgs ...Message) error

	// Close leaves the group at once, handing the member's partitions to
	// the other members from the committed offsets. It is idempotent.
	Close() error
}

// Tailer is an optional Transport capability: a group-free reader of every
// partition of some topics, starting at their ends. The rpc client uses it for
// its reply reader, so no reply can be lost to a late group join.
type Tailer interface {
	// Tail returns a Consumer that reads every partition of topics from the
	// latest offsets as of the call: a record produced after Tail returns is
	// delivered by its Poll. Commit on it is a no-op. Unknown topics are
	// refused (ErrUnknownTopic) unless the transport auto-creates them.
	Tail(ctx context.Context, topics ...string) (Consumer, error)
}

// TopicChecker is an optional Transport capability: it tells which topics
// cannot be produced to, without producing. The rpc server uses it at the
// start of Serve to warn of a dead-letter topic that is missing, which
// would otherwise show only when a record that cannot be served is lost.
type TopicChecker interface {
	// MissingTopics returns those of topics that do not exist, in the order
	// given. Where the server creates topics on first use, a missing topic
	// may be created by the question (as a Produce would create it) and is
	// then not returned: only a topic a Produce would fail on with
	// ErrUnknownTopic is.
	MissingTopics(ctx context.Context, topics ...string) ([]string, error)
}

// Errors shared by transports. Transports wrap them with detail; test them
// with errors.Is.
var (
	// ErrClosed: the transport or consumer was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrUnknownTopic: the topic does not exist and is not auto-created.
	ErrUnknownTopic = errors.New("transport: unknown topic")
	// ErrMessageTooLarge: a record is over the transport's size limit.
	ErrMessageTooLarge = errors.New("transport: message too large")
	// ErrNotAssigned: a commit named a partition the member does not own.
	ErrNotAssigned = errors.New("transport: partition not assigned to this member")
	// ErrFenced: another member joined with this member's instance id.
	ErrFenced = errors.New("transport: member replaced by a newer instance")
	// ErrInvalid: an argument is malformed (empty topic, bad partition...).
	ErrInvalid = errors.New("transport: invalid argument")
	// ErrOutcomeUnknown: the transport cannot tell whether a produce's
	// records were written (its peer accepted the request and answered
	// something that does not say). Retrying may write them twice.
	ErrOutcomeUnknown = errors.New("transport: outcome unknown")
	// ErrUnauthenticated: the transport's credentials were refused. A
	// retry cannot help.
	ErrUnauthenticated = errors.New("transport: unauthenticated")
	// ErrPermissionDenied: the credentials do not allow the operation. A
	// retry cannot help.
	ErrPermissionDenied = errors.New("transport: permission denied")
	// ErrUnavailable: the server could not be reached (connection refused
	// or reset, no route, DNS failure, no answer in time), or answered
	// that it cannot serve now (HTTP 5xx, 429), until the transport's
	// retries gave up: the caller's deadline (a setup timeout, say) came
	// first, or the transport's own retry limits did. It says nothing of
	// the request itself: the same call may succeed once the server is
	// back. A transport that retries wraps it in the error it returns when
	// it gives up, with the last attempt's error; one that cannot tell an
	// unreachable server from a slow one (a request that hung until the
	// deadline without any attempt failing first) returns the deadline
	// alone. The embedded broker never returns it.
	ErrUnavailable = errors.New("transport: server unavailable")
)
