package memory

import "time"

// Defaults of the broker's settings. Each option's doc comment repeats its
// default.
const (
	defaultPartitions       = 1
	defaultRetentionRecords = 100_000
	defaultRetentionBytes   = 64 << 20 // 64 MiB
	defaultMaxMessageBytes  = 1 << 20  // 1 MiB
	defaultSessionTimeout   = 30 * time.Second
	defaultMaxPollRecords   = 1000

	// maxPartitions caps the partition count of one topic, so a typo cannot
	// allocate millions of logs.
	maxPartitions = 10_000
)

// config holds a Broker's settings. It is filled by defaults, then by the
// options in order, and never changes after New.
type config struct {
	partitions       int           // partitions of auto-created topics
	autoCreate       bool          // create unknown topics on first use
	topics           []topicSpec   // created by New, in order
	retentionRecords int           // per partition
	retentionBytes   int64         // per partition
	maxMessageBytes  int           // len(Key)+len(Value)+headers
	sessionTimeout   time.Duration // for Subscription.SessionTimeout == 0
	maxPollRecords   int           // per Poll, and per Fetch with max <= 0
}

type topicSpec struct {
	name       string
	partitions int // <= 0: config.partitions
}

// defaults returns the settings of a Broker made with no options.
func defaults() config {
	return config{
		partitions:       defaultPartitions,
		autoCreate:       true,
		retentionRecords: defaultRetentionRecords,
		retentionBytes:   defaultRetentionBytes,
		maxMessageBytes:  defaultMaxMessageBytes,
		sessionTimeout:   defaultSessionTimeout,
		maxPollRecords:   defaultMaxPollRecords,
	}
}

// Option configures a Broker made by New. Options apply in order; a later
// option overrides an earlier one of the same kind (WithTopic adds to the
// list instead).
type Option interface {
	apply(*config)
}

// funcOption adapts a function to Option.
type funcOption func(*config)

func (f funcOption) apply(c *config) { f(c) }

// WithPartitions sets the partition count of topics the broker creates on
// first use (see WithAutoCreate) and of WithTopic topics given no count.
// The default is 1. A value <= 0 or above 10,000 means the default.
func WithPartitions(n int) Option {
	return funcOption(func(c *config) {
		if n <= 0 || n > maxPartitions {
			n = defaultPartitions
		}
		c.partitions = n
	})
}

// WithAutoCreate says whether Produce, Subscribe, Join and Tail create a
// topic that does not exist yet (with WithPartitions partitions) instead of
// failing with an error wrapping transport.ErrUnknownTopic. The default is
// true, which suits development; Fetch, Offsets, OffsetForTime and
// Committed never create topics.
func WithAutoCreate(on bool) Option {
	return funcOption(func(c *config) { c.autoCreate = on })
}

// WithTopic makes New create the topic name with the given partition count
// (<= 0 means the WithPartitions count). It may be repeated; naming a topic
// again replaces its earlier count.
//
// New panics if name is not a valid topic name or partitions is above
// 10,000, as CreateTopic would refuse them: options are program constants.
// Use CreateTopic for names that come from input.
func WithTopic(name string, partitions int) Option {
	return funcOption(func(c *config) {
		for i := range c.topics {
			if c.topics[i].name == name {
				c.topics[i].partitions = partitions
				return
			}
		}
		c.topics = append(c.topics, topicSpec{name: name, partitions: partitions})
	})
}

// WithRetention bounds every partition's log: when an append makes a
// partition hold more than maxRecords records or more than maxBytes bytes
// (counted as in WithMaxMessageBytes), its oldest records are dropped until
// both limits hold again, and its earliest offset advances. The newest record
// is always kept. Readers positioned on dropped records continue at the
// earliest retained one. The defaults are 100,000 records and 64 MiB; a
// value <= 0 means its default.
func WithRetention(maxRecords int, maxBytes int64) Option {
	return funcOption(func(c *config) {
		if maxRecords <= 0 {
			maxRecords = defaultRetentionRecords
		}
		if maxBytes <= 0 {
			maxBytes = defaultRetentionBytes
		}
		c.retentionRecords = maxRecords
		c.retentionBytes = maxBytes
	})
}

// WithMaxMessageBytes sets the largest record Produce accepts, counted as
// len(Key) + len(Value) + the lengths of every header key and value. A
// larger record fails the whole Produce call with an error wrapping
// transport.ErrMessageTooLarge. The default is 1 MiB (1<<20), Upstash's
// limit; a value <= 0 means the default.
func WithMaxMessageBytes(n int) Option {
	return funcOption(func(c *config) {
		if n <= 0 {
			n = defaultMaxMessageBytes
		}
		c.maxMessageBytes = n
	})
}

// WithSessionTimeout sets the session timeout of group members whose
// Subscription.SessionTimeout is zero: a member that has not polled for that
// long, and is not blocked in Poll, is dropped from its group and its
// partitions go to the other members. The default is 30s; a value <= 0 means
// the default.
func WithSessionTimeout(d time.Duration) Option {
	return funcOption(func(c *config) {
		if d <= 0 {
			d = defaultSessionTimeout
		}
		c.sessionTimeout = d
	})
}

// WithMaxPollRecords sets the most records one Consumer.Poll returns, and
// the default for Fetch's max. The default is 1000; a value <= 0 means the
// default.
func WithMaxPollRecords(n int) Option {
	return funcOption(func(c *config) {
		if n <= 0 {
			n = defaultMaxPollRecords
		}
		c.maxPollRecords = n
	})
}
