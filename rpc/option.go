package rpc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode"
)

// ClientOption configures a Client.
type ClientOption interface{ applyClient(*clientConfig) }

// ServerOption configures a Server.
type ServerOption interface{ applyServer(*serverConfig) }

// Option configures both a Client and a Server.
type Option interface {
	ClientOption
	ServerOption
}

type clientConfig struct {
	name        string
	replyTopic  string
	noticeTopic string
	noticeGroup string
	set         map[string]bool // options given with an empty value, by name
	timeout     time.Duration
	logger      *slog.Logger
	lateMemory  int
	resend      time.Duration
	noticeDedup int
	observer    Observer
	// noticeInstance is the OnNotice member's instance id; "" for a
	// fresh one.
	noticeInstance string
	noReplies      bool // WithoutReplies: no reply reader, no Call
}

type serverConfig struct {
	name           string
	group          string
	instance       string
	instanceSet    bool // WithInstance given: KAFKA_INSTANCE is not read
	concurrency    int
	drain          time.Duration
	logger         *slog.Logger
	middleware     []Middleware
	maxPayload     int
	dedupSize      int
	dedupAge       time.Duration
	dedupTopic     string
	dedupTopicSet  bool
	retries        int
	retryDelay     time.Duration
	keyOrdering    bool
	sessionTimeout time.Duration
	maxPoll        time.Duration
	observer       Observer
	commitInterval time.Duration
}

const (
	defaultName        = "kafkarpc"
	defaultCallTimeout = 30 * time.Second
	defaultConcurrency = 16
	defaultDrain       = 30 * time.Second
	defaultLateMemory  = 4096
	defaultMaxPayload  = 1 << 20
	defaultDedupSize   = 10000
	defaultDedupAge    = 10 * time.Minute
	defaultRetries     = 3
	defaultRetryDelay  = 100 * time.Millisecond
	// defaultCommitInterval is WithCommitInterval's default.
	defaultCommitInterval = 100 * time.Millisecond
)

func clientDefaults() clientConfig {
	return clientConfig{name: defaultName, timeout: defaultCallTimeout, lateMemory: defaultLateMemory, noticeDedup: defaultDedupSize}
}

func serverDefaults() serverConfig {
	return serverConfig{
		name: defaultName, concurrency: defaultConcurrency, drain: defaultDrain, maxPayload: defaultMaxPayload,
		dedupSize: defaultDedupSize, dedupAge: defaultDedupAge, retries: defaultRetries, retryDelay: defaultRetryDelay,
		commitInterval: defaultCommitInterval,
	}
}

func (c *clientConfig) validate() error {
	var errs []error
	if c.name == "" {
		errs = append(errs, errors.New("rpc: WithName: empty name"))
	}
	for _, opt := range []string{"WithReplyTopic", "WithNoticeTopic", "WithNoticeGroup"} {
		if c.set[opt] {
			errs = append(errs, fmt.Errorf("rpc: %s(\"\"): empty name; leave the option out for the default", opt))
		}
	}
	if c.replyTopic == "" {
		c.replyTopic = c.name + ".replies"
	}
	if c.noticeTopic == "" {
		c.noticeTopic = c.name + ".notices"
	}
	if c.noticeGroup == "" {
		c.noticeGroup = c.name
	}
	if c.replyTopic == c.noticeTopic && !c.noReplies {
		errs = append(errs, fmt.Errorf("rpc: reply topic and notice topic are both %q; they must differ so each reply has one owner", c.replyTopic))
	}
	if c.timeout <= 0 {
		errs = append(errs, fmt.Errorf("rpc: WithCallTimeout(%v): must be positive", c.timeout))
	}
	if c.resend < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithResend(%v): must not be negative", c.resend))
	}
	if c.noticeDedup < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithNoticeDedup(%d): must not be negative", c.noticeDedup))
	}
	if err := checkInstance("WithNoticeInstance", c.noticeInstance); err != nil {
		errs = append(errs, err)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return errors.Join(errs...)
}

// markEmpty records that option opt was given an empty value, which
// validate refuses: an empty name given on purpose is a mistake, not a
// request for the default.
func (c *clientConfig) markEmpty(opt, v string) {
	if v != "" {
		return
	}
	if c.set == nil {
		c.set = make(map[string]bool)
	}
	c.set[opt] = true
}

func (c *serverConfig) validate() error {
	var errs []error
	if c.name == "" {
		errs = append(errs, errors.New("rpc: WithName: empty name"))
	}
	if c.group == "" {
		c.group = c.name
	}
	if !c.instanceSet {
		c.instance = os.Getenv(EnvInstance)
		if c.instance != "" && c.group != c.name {
			// KAFKA_INSTANCE names the process, and a process may run
			// several Servers in one group (WithGroup), one per service:
			// with the bare value they would be twins and fence each
			// other. Each takes "<KAFKA_INSTANCE>.<name>", stable and
			// distinct per service.
			c.instance += "." + c.name
		}
	}
	if err := checkInstance("WithInstance", c.instance); err != nil {
		if !c.instanceSet {
			err = fmt.Errorf("rpc: %s=%q: %w", EnvInstance, c.instance, err)
		}
		errs = append(errs, err)
	}
	if c.concurrency < 1 {
		errs = append(errs, fmt.Errorf("rpc: WithConcurrency(%d): must be at least 1", c.concurrency))
	}
	if c.drain < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithDrainTimeout(%v): must not be negative", c.drain))
	}
	if c.maxPayload < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithMaxPayload(%d): must not be negative", c.maxPayload))
	}
	if c.dedupSize < 0 || (c.dedupSize > 0 && c.dedupAge <= 0) {
		errs = append(errs, fmt.Errorf("rpc: WithDedup(%d, %v): size must not be negative and age must be positive", c.dedupSize, c.dedupAge))
	}
	if !c.dedupTopicSet {
		c.dedupTopic = c.group + ".handled"
	}
	if c.sessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithSessionTimeout(%v): must not be negative", c.sessionTimeout))
	}
	if c.maxPoll < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithMaxPollInterval(%v): must not be negative", c.maxPoll))
	}
	if c.commitInterval < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithCommitInterval(%v): must not be negative", c.commitInterval))
	}
	if c.retries < 1 || c.retryDelay <= 0 {
		errs = append(errs, fmt.Errorf("rpc: WithRetry(%d, %v): attempts must be at least 1 and the delay positive", c.retries, c.retryDelay))
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return errors.Join(errs...)
}

type nameOption string

func (o nameOption) applyClient(c *clientConfig) { c.name = string(o) }
func (o nameOption) applyServer(c *serverConfig) { c.name = string(o) }

// WithName sets the service name, sent as rpc-from on every record. It is
// also the base of the default reply topic ("<name>.replies"), notice topic
// ("<name>.notices"), notice group ("<name>") and server group ("<name>").
// Default "kafkarpc".
func WithName(name string) Option { return nameOption(name) }

type loggerOption struct{ l *slog.Logger }

func (o loggerOption) applyClient(c *clientConfig) { c.logger = o.l }
func (o loggerOption) applyServer(c *serverConfig) { c.logger = o.l }

// WithLogger sets the logger. Default slog.Default(). Credentials and
// payloads are never logged.
func WithLogger(l *slog.Logger) Option { return loggerOption{l} }

type clientFunc func(*clientConfig)

func (f clientFunc) applyClient(c *clientConfig) { f(c) }

type serverFunc func(*serverConfig)

func (f serverFunc) applyServer(c *serverConfig) { f(c) }

// WithReplyTopic sets the topic this client reads Call replies from.
// Default "<name>.replies". Instances of one service may share it: each
// reads every reply and ignores those of other instances.
func WithReplyTopic(topic string) ClientOption {
	return clientFunc(func(c *clientConfig) { c.replyTopic = topic; c.markEmpty("WithReplyTopic", topic) })
}

// WithoutReplies makes a client that sends and reads no reply topic:
// NewClient positions no reply reader, so the reply topic need not exist
// (on a server where topics are made by hand, a service that only
// notifies needs none). Notify and Send work as usual (Send's notices go
// to the notice topic, which OnNotice reads); Call and the typed Call
// return an *Error with CodeFailedPrecondition wrapping ErrNoReplies at
// once, without sending the request. WithReplyTopic is then unused.
// Default: off, the client reads its reply topic.
func WithoutReplies() ClientOption {
	return clientFunc(func(c *clientConfig) { c.noReplies = true })
}

// WithNoticeTopic sets the topic that Send's completion notices (and their
// progress notices) go to. It is read by a durable consumer group shared by
// the service's instances once OnNotice is called. Default "<name>.notices".
func WithNoticeTopic(topic string) ClientOption {
	return clientFunc(func(c *clientConfig) { c.noticeTopic = topic; c.markEmpty("WithNoticeTopic", topic) })
}

// WithNoticeGroup sets the consumer group that reads the notice topic.
// Default "<name>".
func WithNoticeGroup(group string) ClientOption {
	return clientFunc(func(c *clientConfig) { c.noticeGroup = group; c.markEmpty("WithNoticeGroup", group) })
}

// WithCallTimeout sets the timeout of a Call whose context has no deadline
// and which has no WithTimeout call option. Default 30s.
func WithCallTimeout(d time.Duration) ClientOption {
	return clientFunc(func(c *clientConfig) { c.timeout = d })
}

// WithGroup sets the consumer group a Server joins; servers of one group
// share the requests. Default: the name given by WithName.
func WithGroup(group string) ServerOption {
	return serverFunc(func(c *serverConfig) { c.group = group })
}

// EnvInstance is the environment variable a Server takes its instance id
// from when WithInstance is not given: KAFKA_INSTANCE, as the seed's Laravel
// setup names it.
const EnvInstance = "KAFKA_INSTANCE"

// WithInstance sets the server's member id within its group: a stable
// identity (Kafka's group.instance.id, static membership). A server that
// crashed and is restarted with the same id takes its predecessor's
// partitions back at once, instead of the group waiting to find the dead
// member (WithSessionTimeout, or over the REST API WithMaxPollInterval or
// the REST server's idle expiry: minutes), and reads them from the group's
// committed offsets, so requests the dead process had taken but not
// answered are handled again (the dedup window answers those it had
// answered without committing).
//
// The trade-off: the id must be unique among the live servers of the
// group. Two live processes with the same id fence each other: when the
// second joins, the first one's member is replaced; its Serve stops
// dispatching and returns an error wrapping transport.ErrFenced (on the
// embedded broker, on kafka-rest, and on Kafka), so no request is read by
// both. Give each process its own id (a host name, a slot number), never
// one per deployment.
//
// Default: the value of the environment variable KAFKA_INSTANCE (EnvInstance)
// when set, else a fresh id per Serve (no static membership). The variable
// names the process, which may run several Servers: a Server whose group
// was set with WithGroup to other than its name takes
// "<KAFKA_INSTANCE>.<name>", so that the Servers of one process sharing a
// group do not fence each other (with the default group, its name, the id
// is the variable's value). WithInstance("") asks for the fresh id whatever
// the environment says. An id over 200 bytes or with spaces or control
// characters is refused by NewServer.
func WithInstance(id string) ServerOption {
	return serverFunc(func(c *serverConfig) { c.instance = id; c.instanceSet = true })
}

// WithNoticeInstance sets the member id of the durable group that reads the
// notices (OnNotice): a stable identity, as WithInstance is for a Server. A
// client process restarted with the same id takes its notice partitions
// back at once and reads them from the committed offset, so a notice that
// arrived while it was down, or that it was handling when it died, is
// handled then. Two live clients with the same id fence each other: the
// older one's notice reader stops, with an error in the log. Default: a
// fresh id (KAFKA_INSTANCE is not read here: a process that runs a Server
// and a Client of one name would put both members, with one id, in one
// group).
func WithNoticeInstance(id string) ClientOption {
	return clientFunc(func(c *clientConfig) { c.noticeInstance = id })
}

// checkInstance refuses an instance id that cannot be a member id or a
// REST path segment without surprises.
func checkInstance(opt, id string) error {
	if len(id) > 200 {
		return fmt.Errorf("rpc: %s: instance id of %d bytes is over 200", opt, len(id))
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return fmt.Errorf("rpc: %s(%q): an instance id must not hold spaces or control characters", opt, id)
		}
	}
	return nil
}

// WithConcurrency bounds how many handlers run at once. Default 16.
func WithConcurrency(n int) ServerOption {
	return serverFunc(func(c *serverConfig) { c.concurrency = n })
}

// WithDrainTimeout bounds how long Serve waits for in-flight handlers after
// its context is canceled; handlers still running then see their context
// canceled. Default 30s.
func WithDrainTimeout(d time.Duration) ServerOption {
	return serverFunc(func(c *serverConfig) { c.drain = d })
}

// WithCommitInterval is the least time between two commits of a Serve:
// watermarks that move sooner are committed together when it has passed, so
// that a busy server makes one commit (one request on a REST transport) for
// many records instead of one per record. Default 100ms; 0 commits as soon
// as a watermark moves. A negative d is an error.
//
// Commits still never pass unfinished work, and Serve commits everything it
// handled when it stops, so delivery stays at-least-once. The trade: after
// a crash, or when a partition moves to another member, the records handled
// in the last interval are delivered again; the dedup window (WithDedup,
// shared by the group through the dedup topic, which survives a crash)
// answers those requests with their stored replies instead of running them
// again. So that the window still holds them, the server commits before the
// interval's end once half the window's size is handled and not committed
// (counting with its own the other instances' markers it read since its
// last commit: the window is the group's, and they fill it too), and waits
// at most half the window's age; at a whole window's size the
// workers take nothing more until a commit is made: while commits fail or
// hang, the server waits rather than handle on with nothing committed. (A
// record still running below the handled ones is waited for up to a
// second; a longer one holds nobody: what is handled after it is committed
// when it ends.)
func WithCommitInterval(d time.Duration) ServerOption {
	return serverFunc(func(c *serverConfig) { c.commitInterval = d })
}

// WithMiddleware adds middleware around every handler, outermost first.
// Panic recovery is always innermost and needs no option.
func WithMiddleware(m ...Middleware) ServerOption {
	return serverFunc(func(c *serverConfig) { c.middleware = append(c.middleware, m...) })
}

// CallOption configures one Call, Send or Notify.
type CallOption func(*callConfig)

type callConfig struct {
	timeout  time.Duration
	key      string
	method   string
	headers  []header
	progress func(*Reply)
}

type header struct{ k, v string }

// newCallConfig applies opts and validates the result.
func newCallConfig(opts []CallOption) (callConfig, error) {
	if len(opts) == 0 {
		return callConfig{}, nil // the common case: nothing to apply, no allocation
	}
	cc := new(callConfig)
	for _, o := range opts {
		o(cc)
	}
	var errs []error
	if cc.timeout < 0 {
		errs = append(errs, fmt.Errorf("rpc: WithTimeout(%v): must not be negative", cc.timeout))
	}
	if strings.Contains(cc.method, "/") {
		errs = append(errs, fmt.Errorf("rpc: WithMethod(%q): must not contain '/' (routes are \"topic/method\")", cc.method))
	}
	if err := errors.Join(errs...); err != nil {
		return *cc, NewError(CodeInvalidArgument, err)
	}
	return *cc, nil
}

// WithTimeout bounds the call: the reply must arrive within d. The deadline
// travels to the server, which does not run requests that expired. Zero
// means the context's deadline or the client's WithCallTimeout; a negative d
// makes the call fail with CodeInvalidArgument.
func WithTimeout(d time.Duration) CallOption { return func(c *callConfig) { c.timeout = d } }

// WithKey sets the record key, which picks the partition: records with one
// key keep their order. Default empty (spread over partitions). A legacy
// consumer such as the Laravel article's PHP router reads the key as the producer name.
func WithKey(key string) CallOption { return func(c *callConfig) { c.key = key } }

// WithMethod sets rpc-method, a sub-route within the topic: a Server routes
// it to the handler registered for "topic/method". A method containing "/"
// makes the call fail with CodeInvalidArgument.
func WithMethod(m string) CallOption { return func(c *callConfig) { c.method = m } }

// WithHeader adds a record header, such as traceparent. Keys starting with
// "rpc-" are reserved and ignored.
func WithHeader(key, value string) CallOption {
	return func(c *callConfig) { c.headers = append(c.headers, header{key, value}) }
}

// WithProgress makes Call deliver the handler's progress notices to fn, in
// the reply reader's goroutine: fn must not block.
func WithProgress(fn func(*Reply)) CallOption { return func(c *callConfig) { c.progress = fn } }

// WithMaxPayload sets the largest request value the server handles, in
// bytes; larger records are dead-lettered with CodeResourceExhausted. Zero
// means no limit beyond the transport's. Default 1 MiB.
func WithMaxPayload(n int) ServerOption {
	return serverFunc(func(c *serverConfig) { c.maxPayload = n })
}

// WithDedup sets the dedup window: a request whose rpc-id was handled within
// the last size requests and age is not run again when delivered again; its
// stored reply is sent again. Size 0 turns dedup off. Default 10000 requests
// and 10 minutes. The window holds up to size entries, each with the reply
// it stores (so memory is about size times the typical reply size).
func WithDedup(size int, age time.Duration) ServerOption {
	return serverFunc(func(c *serverConfig) { c.dedupSize, c.dedupAge = size, age })
}

// WithDedupTopic sets the topic where the server records each handled
// request with its reply (on partition 0), so that the dedup window outlives
// the process and is shared by the instances of the group: Serve replays it
// before taking requests (all of it, up to a record it writes at its
// start, however long that takes; Serve fails when the replay gets no
// nearer that record for 30 s: none of the records before it read, or it
// could not be written). Give it a retention near the window's age. Empty
// keeps the window in memory only. Default "<group>.handled".
//
// Replaying it also measures the broker's clock against this machine's, by
// which request deadlines (measured from the broker's timestamps) are read.
// Without it that skew is unknown, and a request that looks expired on
// arrival is run with its budget counted from its arrival rather than
// dropped: the clocks might disagree.
func WithDedupTopic(topic string) ServerOption {
	return serverFunc(func(c *serverConfig) { c.dedupTopic, c.dedupTopicSet = topic, true })
}

// WithRetry sets how often a handler whose error is marked Retryable is
// run: up to attempts times in all, waiting delay and then twice as long
// each time (at most 5s), within the request's deadline. After the last
// attempt the request is dead-lettered and its caller gets the error.
// Default 3 attempts, 100ms.
func WithRetry(attempts int, delay time.Duration) ServerOption {
	return serverFunc(func(c *serverConfig) { c.retries, c.retryDelay = attempts, delay })
}

// WithKeyOrdering makes the server handle records with the same key one at
// a time, in offset order (records with different keys still run
// concurrently). Keyless records all share the empty key, so with this option
// they run one at a time: give requests keys (WithKey) to spread them.
// Default off: records run in any order.
func WithKeyOrdering() ServerOption {
	return serverFunc(func(c *serverConfig) { c.keyOrdering = true })
}

// WithResend makes Call send its request again, with the same id, when no
// reply came within d, until the call's deadline: a request or reply lost in
// transit is then recovered, and the server's dedup window keeps the handler
// from running twice. Zero (the default) sends once.
func WithResend(d time.Duration) ClientOption {
	return clientFunc(func(c *clientConfig) { c.resend = d })
}

// WithNoticeDedup sets how many completion notices the OnNotice reader
// remembers to drop duplicates (a request redelivered to a server that
// crashed after replying can be answered twice). Zero turns it off. Default
// 10000.
func WithNoticeDedup(n int) ClientOption {
	return clientFunc(func(c *clientConfig) { c.noticeDedup = n })
}

// WithSessionTimeout sets how long the group waits for a server that gave
// no sign of life (a crashed process) before handing its partitions to the
// others. A busy server is alive: transports heartbeat by themselves (see
// transport.Subscription). Over the REST API the member lives in the REST
// server, which heartbeats for it while the instance exists: there a crashed
// server is found by WithMaxPollInterval or the REST server's idle expiry.
// Zero means the transport's default; negative is an error.
func WithSessionTimeout(d time.Duration) ServerOption {
	return serverFunc(func(c *serverConfig) { c.sessionTimeout = d })
}

// WithMaxPollInterval sets the longest a server may go without polling
// before its group drops it and hands its partitions to the others
// (Kafka's max.poll.interval.ms). Serve polls whenever a worker is free, so
// it must exceed the longest time all workers can be busy; with
// WithKeyOrdering, also the time one key's queue (64 records) takes to drain,
// since Serve stops polling while a record waits for a full queue. Over the REST
// API it is also how soon a crashed server's partitions move, and how long
// the REST transport, while the server does not poll, keeps its consumer
// instance from the REST server's idle expiry (transport/upstash's
// WithInstanceKeepAlive). Zero means
// the transport's default (5 minutes on the embedded broker and kafka-rest);
// negative is an error.
func WithMaxPollInterval(d time.Duration) ServerOption {
	return serverFunc(func(c *serverConfig) { c.maxPoll = d })
}
