package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Option configures a Transport made by New or FromEnv. Options are applied
// in order over the defaults, then validated once: New returns the first
// problem as an error.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	cfg             Config
	cfgSet          bool
	brokers         []string
	linger          time.Duration
	setupTimeout    time.Duration
	autoCreate      bool
	createParts     int32
	createRF        int16
	maxMessageBytes int
	sessionTimeout  time.Duration
	heartbeat       time.Duration
	maxPollInterval time.Duration
	pollWindow      time.Duration
	maxPollRecords  int
	metadataTTL     time.Duration
	logger          *slog.Logger
	extra           []kgo.Opt
}

func defaults() options {
	return options{
		linger:          0,
		setupTimeout:    10 * time.Second,
		createRF:        -1,
		maxMessageBytes: 1_000_000,
		sessionTimeout:  45 * time.Second,
		heartbeat:       time.Second,
		maxPollInterval: 5 * time.Minute,
		pollWindow:      time.Second,
		maxPollRecords:  500,
		metadataTTL:     10 * time.Second,
		logger:          slog.New(slog.DiscardHandler),
	}
}

func (o *options) validate() error {
	if o.cfgSet && len(o.brokers) > 0 {
		return errors.New("kafka: Brokers and WithConfig both given: give one")
	}
	if !o.cfgSet {
		o.cfg.Brokers = o.brokers
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	switch {
	case o.linger < 0:
		return fmt.Errorf("kafka: ProducerLinger %v: must not be negative", o.linger)
	case o.setupTimeout <= 0:
		return fmt.Errorf("kafka: SetupTimeout %v: must be positive", o.setupTimeout)
	case o.autoCreate && o.createParts <= 0:
		return fmt.Errorf("kafka: AutoCreateTopics: %d partitions, want at least 1", o.createParts)
	case o.autoCreate && o.createRF == 0 || o.createRF < -1:
		return fmt.Errorf("kafka: AutoCreateTopics: replication factor %d, want -1 (broker default) or at least 1", o.createRF)
	case o.maxMessageBytes <= 0:
		return fmt.Errorf("kafka: MaxMessageBytes %d: must be positive", o.maxMessageBytes)
	case o.sessionTimeout < 100*time.Millisecond:
		return fmt.Errorf("kafka: SessionTimeout %v: must be at least 100ms", o.sessionTimeout)
	case o.heartbeat <= 0:
		return fmt.Errorf("kafka: HeartbeatInterval %v: must be positive", o.heartbeat)
	case o.maxPollInterval <= 0:
		return fmt.Errorf("kafka: MaxPollInterval %v: must be positive", o.maxPollInterval)
	case o.pollWindow <= 0:
		return fmt.Errorf("kafka: PollWindow %v: must be positive", o.pollWindow)
	case o.maxPollRecords <= 0:
		return fmt.Errorf("kafka: MaxPollRecords %d: must be positive", o.maxPollRecords)
	case o.logger == nil:
		return errors.New("kafka: WithLogger: nil logger")
	}
	return nil
}

// Brokers sets the seed brokers (host:port) with no SASL or TLS. Use
// WithConfig for SASL or TLS; giving both is an error. One of the two is
// required (FromEnv gives the Config).
func Brokers(hostPorts ...string) Option {
	return optionFunc(func(o *options) { o.brokers = append(o.brokers, hostPorts...) })
}

// WithConfig sets how to reach the cluster: seed brokers, client id, SASL
// and TLS (see Config). It replaces any earlier WithConfig.
func WithConfig(c Config) Option {
	return optionFunc(func(o *options) { o.cfg, o.cfgSet = c, true })
}

// ProducerLinger sets how long the producer waits to fill a batch before
// sending it. Default 0: every Produce is sent at once. (franz-go's own
// default of 10 ms adds 10 ms to each hop of an RPC.)
func ProducerLinger(d time.Duration) Option {
	return optionFunc(func(o *options) { o.linger = d })
}

// SetupTimeout bounds New's first contact with the brokers (and the
// authentication that comes with it). Default 10 s. Unreachable brokers or
// refused credentials make New fail within it.
func SetupTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.setupTimeout = d })
}

// AutoCreateTopics makes Produce, Subscribe and Tail create a topic they
// find missing, with the given partitions and replication factor (-1: the
// broker's default.replication.factor). Default off: a missing topic is an
// error wrapping transport.ErrUnknownTopic.
func AutoCreateTopics(partitions int32, replicationFactor int16) Option {
	return optionFunc(func(o *options) {
		o.autoCreate, o.createParts, o.createRF = true, partitions, replicationFactor
	})
}

// MaxMessageBytes is the largest record (key + value + headers) Produce
// accepts; a larger one fails with transport.ErrMessageTooLarge before
// anything is sent. Default 1,000,000 bytes, under the brokers' default
// message.max.bytes (1,048,588). Raise it only with the topic's
// max.message.bytes.
func MaxMessageBytes(n int) Option {
	return optionFunc(func(o *options) { o.maxMessageBytes = n })
}

// SessionTimeout is the group session timeout of members whose
// Subscription leaves SessionTimeout zero. Default 45 s (franz-go's and
// Kafka's). It must lie within the brokers' group.min/max.session.timeout.ms
// (6 s to 30 min on Apache Kafka).
func SessionTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.sessionTimeout = d })
}

// HeartbeatInterval is how often members heartbeat. Default 1 s (it is
// lowered to a fifth of a member's session timeout when that is shorter). A replaced static
// member learns it was fenced at its next heartbeat; a static member's first
// records come one interval (this option's value, even when lowered for a
// short session) after it joined, so the members of a group must share this
// option (see the package doc).
func HeartbeatInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.heartbeat = d })
}

// MaxPollInterval is the poll interval of members whose Subscription
// leaves MaxPollInterval zero. Default 5 min. Kafka's clients other than
// Java's have no such rule; this transport enforces it itself (see the
// package doc).
func MaxPollInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.maxPollInterval = d })
}

// PollWindow is the longest one Poll waits for records before returning an
// empty result. Default 1 s.
func PollWindow(d time.Duration) Option {
	return optionFunc(func(o *options) { o.pollWindow = d })
}

// MaxPollRecords caps the records one Poll returns. Default 500.
func MaxPollRecords(n int) Option {
	return optionFunc(func(o *options) { o.maxPollRecords = n })
}

// WithLogger sets the logger of the transport's own events: a broker its
// clients cannot connect to is a warning, once per outage of that broker
// (franz-go retries the requests that need it, within their deadlines,
// without a word; later failures are logged at debug level), and an info
// line says when it answers again. Default: discard. Credentials are never
// logged. (franz-go's own log is kgo.WithLogger, through ClientOpts.)
func WithLogger(logger *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = logger })
}

// ClientOpts appends raw franz-go options to every client the transport
// makes (after its own, so they override them). For tuning only: options
// that change the producer's partitioning or a group's commit behaviour
// break the transport's contract.
func ClientOpts(opts ...kgo.Opt) Option {
	return optionFunc(func(o *options) { o.extra = append(o.extra, opts...) })
}
