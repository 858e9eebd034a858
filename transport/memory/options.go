package memory

import (
	"fmt"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Defaults of the broker's settings. Each option's doc comment repeats its
// default.
const (
	defaultPartitions       = 1
	defaultRetentionRecords = 100_000
	defaultRetentionBytes   = 64 << 20           // 64 MiB
	defaultRetentionAge     = 7 * 24 * time.Hour // Kafka's log.retention.hours
	defaultMaxMessageBytes  = 1 << 20            // 1 MiB
	defaultSessionTimeout   = 30 * time.Second
	defaultMaxPollInterval  = 5 * time.Minute
	defaultMaxPollRecords   = 1000
	defaultOffsetsRetention = 7 * 24 * time.Hour // Kafka's offsets.retention.minutes
	defaultMaxTopics        = 10_000
	defaultMaxTotalParts    = 100_000
	defaultFetchMaxBytes    = 50 << 20 // 50 MiB, Kafka's fetch.max.bytes
	defaultPartitionBytes   = 1 << 20  // 1 MiB, Kafka's max.partition.fetch.bytes

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
	retentionAge     time.Duration // of a partition's oldest record
	maxMessageBytes  int           // len(Key)+len(Value)+headers
	sessionTimeout   time.Duration // for Subscription.SessionTimeout == 0
	maxPollInterval  time.Duration // for Subscription.MaxPollInterval == 0
	maxPollRecords   int           // per Poll, and per Fetch with max <= 0
	fetchMaxBytes    int           // per Poll
	maxTopics        int           // topics in the broker
	offsetsRetention time.Duration // of groups without members
	maxTotalParts    int           // partitions of all topics
	partitionBytes   int           // per partition per Poll, and per Fetch
	durable          durableConfig // NewDurable's settings
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
		retentionAge:     defaultRetentionAge,
		maxMessageBytes:  defaultMaxMessageBytes,
		sessionTimeout:   defaultSessionTimeout,
		maxPollInterval:  defaultMaxPollInterval,
		maxPollRecords:   defaultMaxPollRecords,
		fetchMaxBytes:    defaultFetchMaxBytes,
		maxTopics:        defaultMaxTopics,
		offsetsRetention: defaultOffsetsRetention,
		maxTotalParts:    defaultMaxTotalParts,
		partitionBytes:   defaultPartitionBytes,
	}
}

// Option configures a Broker made by New. Options apply in order; a later
// option overrides an earlier one of the same kind (WithTopic adds to the
// list instead). An option given a bad value makes New fail with an error
// naming the option and the value.
type Option interface {
	apply(*config) error
}

// funcOption adapts a function to Option.
type funcOption func(*config) error

func (f funcOption) apply(c *config) error { return f(c) }

// errOption is the error of an option given a bad value.
func errOption(call, why string) error {
	return fmt.Errorf("memory: %s: %s: %w", call, why, transport.ErrInvalid)
}

// WithPartitions sets the partition count of topics the broker creates on
// first use (see WithAutoCreate) and of WithTopic topics given no count.
// The default is 1; a value outside 1..10,000 makes New fail.
func WithPartitions(n int) Option {
	return funcOption(func(c *config) error {
		if n <= 0 || n > maxPartitions {
			return errOption(fmt.Sprintf("WithPartitions(%d)", n), fmt.Sprintf("the partition count must be within 1..%d", maxPartitions))
		}
		c.partitions = n
		return nil
	})
}

// WithAutoCreate says whether Produce, Subscribe, Join and Tail create a
// topic that does not exist yet (with WithPartitions partitions) instead of
// failing with an error wrapping transport.ErrUnknownTopic. The default is
// true, which suits development; Fetch, Offsets, OffsetForTime and
// Committed never create topics.
func WithAutoCreate(on bool) Option {
	return funcOption(func(c *config) error { c.autoCreate = on; return nil })
}

// WithTopic makes New create the topic name with the given partition count
// (<= 0 means the WithPartitions count). It may be repeated; naming a topic
// again replaces its earlier count.
//
// New fails if name is not a valid topic name or partitions is above
// 10,000, as CreateTopic would refuse them.
func WithTopic(name string, partitions int) Option {
	return funcOption(func(c *config) error {
		call := fmt.Sprintf("WithTopic(%q, %d)", name, partitions)
		if err := validTopicName(name); err != nil {
			return errOption(call, err.Error())
		}
		if partitions > maxPartitions {
			return errOption(call, fmt.Sprintf("the partition count must be within 1..%d", maxPartitions))
		}
		for i := range c.topics {
			if c.topics[i].name == name {
				c.topics[i].partitions = partitions
				return nil
			}
		}
		c.topics = append(c.topics, topicSpec{name: name, partitions: partitions})
		return nil
	})
}

// WithRetention bounds every partition's log: when an append makes a
// partition hold more than maxRecords records or more than maxBytes bytes
// (counted as in WithMaxMessageBytes), its oldest records are dropped until
// both limits hold again, and its earliest offset advances. The newest record
// is always kept. Readers positioned on dropped records continue at the
// earliest retained one. The defaults are 100,000 records and 64 MiB; 0
// leaves that limit at its default (WithRetention(10, 0) bounds the count
// only), and a negative value makes New fail.
func WithRetention(maxRecords int, maxBytes int64) Option {
	return funcOption(func(c *config) error {
		if maxRecords < 0 || maxBytes < 0 {
			return errOption(fmt.Sprintf("WithRetention(%d, %d)", maxRecords, maxBytes), "the limits must not be negative")
		}
		if maxRecords > 0 {
			c.retentionRecords = maxRecords
		}
		if maxBytes > 0 {
			c.retentionBytes = maxBytes
		}
		return nil
	})
}

// WithMaxMessageBytes sets the largest record Produce accepts, counted as
// len(Key) + len(Value) + the lengths of every header key and value. A
// larger record fails the whole Produce call with an error wrapping
// transport.ErrMessageTooLarge. The default is 1 MiB (1<<20), Upstash's
// limit; a value <= 0 makes New fail.
func WithMaxMessageBytes(n int) Option {
	return funcOption(func(c *config) error {
		if n <= 0 {
			return errOption(fmt.Sprintf("WithMaxMessageBytes(%d)", n), "the limit must be positive")
		}
		c.maxMessageBytes = n
		return nil
	})
}

// WithSessionTimeout sets the session timeout of group members whose
// Subscription.SessionTimeout is zero. A Consumer of this broker lives in
// the broker's process and heartbeats as long as it is open, so its session
// never lapses; the value is kept for what a Consumer reports. The default
// is 30s; a value <= 0 makes New fail.
func WithSessionTimeout(d time.Duration) Option {
	return funcOption(func(c *config) error {
		if d <= 0 {
			return errOption(fmt.Sprintf("WithSessionTimeout(%v)", d), "the timeout must be positive")
		}
		c.sessionTimeout = d
		return nil
	})
}

// WithMaxPollInterval sets the max poll interval of group members whose
// Subscription.MaxPollInterval is zero: a member that owns partitions and
// has not called Poll for that long (and is not blocked in Poll) is dropped
// from its group, its partitions go to the other members, and its next Poll
// rejoins (Kafka's max.poll.interval.ms). The default is 5 minutes, as in
// Kafka; a value <= 0 makes New fail.
func WithMaxPollInterval(d time.Duration) Option {
	return funcOption(func(c *config) error {
		if d <= 0 {
			return errOption(fmt.Sprintf("WithMaxPollInterval(%v)", d), "the interval must be positive")
		}
		c.maxPollInterval = d
		return nil
	})
}

// WithMaxPollRecords sets the most records one Consumer.Poll returns, and
// the default for Fetch's max. The default is 1000; a value <= 0 makes New
// fail.
func WithMaxPollRecords(n int) Option {
	return funcOption(func(c *config) error {
		if n <= 0 {
			return errOption(fmt.Sprintf("WithMaxPollRecords(%d)", n), "the count must be positive")
		}
		c.maxPollRecords = n
		return nil
	})
}

// WithFetchMaxBytes caps the records one Consumer.Poll returns in bytes,
// as Kafka's fetch.max.bytes (maxBytes, in all) and
// max.partition.fetch.bytes (partitionBytes, per partition) do, counting
// each record as WithMaxMessageBytes does. Fetch applies partitionBytes.
// The first record of a Poll or Fetch always comes, whatever its size, so a
// reader makes progress; records left out stay for the next Poll. The
// defaults are Kafka's: 50 MiB and 1 MiB; a value <= 0 makes New fail.
func WithFetchMaxBytes(maxBytes, partitionBytes int) Option {
	return funcOption(func(c *config) error {
		if maxBytes <= 0 || partitionBytes <= 0 {
			return errOption(fmt.Sprintf("WithFetchMaxBytes(%d, %d)", maxBytes, partitionBytes), "the limits must be positive")
		}
		c.fetchMaxBytes, c.partitionBytes = maxBytes, partitionBytes
		return nil
	})
}

// WithMaxTopics caps the topics the broker holds and their partitions in
// all. Creating topics past either cap (CreateTopic, or auto-creation by
// Produce, Subscribe, Join or Tail) fails with an error wrapping
// transport.ErrInvalid and creates none of them. The defaults are 10,000
// topics and 100,000 partitions; a value <= 0 makes New fail.
func WithMaxTopics(topics, partitions int) Option {
	return funcOption(func(c *config) error {
		if topics <= 0 || partitions <= 0 {
			return errOption(fmt.Sprintf("WithMaxTopics(%d, %d)", topics, partitions), "the limits must be positive")
		}
		c.maxTopics, c.maxTotalParts = topics, partitions
		return nil
	})
}

// WithOffsetsRetention sets how long a consumer group that has committed
// offsets is kept after its last member left (Kafka's
// offsets.retention.minutes): then it is deleted with its offsets, and a
// member that joins later starts by its Subscription.Start. A group without
// committed offsets is deleted as soon as its last member leaves. Expired
// groups are found by Subscribe, Join and Groups, at most once per tenth of
// d (at least once a minute). The default is 7 days, Kafka's; a value <= 0
// makes New fail.
func WithOffsetsRetention(d time.Duration) Option {
	return funcOption(func(c *config) error {
		if d <= 0 {
			return errOption(fmt.Sprintf("WithOffsetsRetention(%v)", d), "the retention must be positive")
		}
		c.offsetsRetention = d
		return nil
	})
}

// WithRetentionAge bounds how old a partition's records may grow, as
// Kafka's retention.ms does: when a partition is appended to, its oldest
// records appended more than d before now are dropped (the newest is
// always kept). The age counts from the append, not from the record's
// Time, which a producer may set to any time (Kafka's LogAppendTime).
// Drops happen only at appends: the broker runs no goroutine. The default is 7 days, Kafka's
// log.retention.hours; a value <= 0 makes New fail.
func WithRetentionAge(d time.Duration) Option {
	return funcOption(func(c *config) error {
		if d <= 0 {
			return errOption(fmt.Sprintf("WithRetentionAge(%v)", d), "the age must be positive")
		}
		c.retentionAge = d
		return nil
	})
}
