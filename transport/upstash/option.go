package upstash

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults used by [New] when no option overrides them.
const (
	// DefaultPollWindow is the longest one Poll waits on the server before
	// returning an empty result.
	DefaultPollWindow = 5 * time.Second
	// DefaultMaxBatch is the most messages one coalesced POST /produce carries.
	DefaultMaxBatch = 500
	// DefaultMaxBatchBytes is the most JSON bytes (approximately) one coalesced
	// POST /produce carries; well under the server's 16 MiB request limit.
	DefaultMaxBatchBytes = 4 << 20
	// DefaultMaxCarriedAnswer is the most bytes (approximately) of the
	// Kafka-Produced header that answers the records one consume or fetch
	// carries (see [WithMaxCarriedAnswer]): under nginx's default
	// proxy_buffer_size of 4 KiB, which holds a response's whole header
	// block.
	DefaultMaxCarriedAnswer = 3 << 10
	// DefaultRequestTimeout bounds one HTTP attempt, on top of the server-side
	// wait of a long poll, so a hung connection is abandoned and retried.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultCloseTimeout bounds the best-effort POST /delete-consumer calls
	// made by Close.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultMaxPartitions is the most partitions per topic the client
	// believes a server about. Tail and the group consumer keep per-partition
	// state and Tail sends one entry per partition in every fetch, so a
	// server claiming 2^31-1 partitions could otherwise exhaust memory with
	// a 25-byte answer. 10,000 is twice the largest Upstash plan's partition
	// cap per cluster (5,000) and well above Kafka's practical per-topic
	// counts; at the cap a fetch request is about 600 KB.
	DefaultMaxPartitions = 10_000
	// DefaultSetupTimeout bounds Tail and Subscribe as a whole, retries
	// included, whatever their context: they are what rpc.NewClient and
	// rpc.Server wait on, and take no context of the caller's there.
	// It is twice DefaultRequestTimeout, so that one attempt that hangs
	// (a dead keep-alive connection, say) leaves room for the retry.
	DefaultSetupTimeout = 2 * DefaultRequestTimeout
	// DefaultInstanceKeepAlive is how often a subscribed consumer that is
	// not polling names its instance to the server, so that the server
	// does not close it as idle (see [WithInstanceKeepAlive]): a fifth of
	// kafka-rest's default instance expiry (5 minutes), so that three
	// keep-alives in a row can fail or be late (a server restarting, a
	// retry running out) before the instance is lost, for one small
	// request a minute by a consumer whose owner is busy.
	DefaultInstanceKeepAlive = time.Minute
	// maxServerTimeout is the server's clamp on a long-poll "timeout" (§11).
	maxServerTimeout = 30 * time.Second
)

// Backoff configures the retries of 5xx, 429 and connection errors. A zero
// field takes its default. Retries stop when MaxElapsed has passed since the
// first attempt, after MaxRetries retries, or when the caller's context ends,
// whichever comes first.
type Backoff struct {
	// Initial is the wait before the first retry. Default 100ms.
	Initial time.Duration
	// Max caps one wait. Default 2s.
	Max time.Duration
	// Multiplier grows the wait after each retry. Default 2.
	Multiplier float64
	// MaxElapsed caps the total time spent retrying one request.
	// Default 30s.
	MaxElapsed time.Duration
	// MaxRetries caps the number of retries of one request. Zero means no
	// cap other than MaxElapsed; use [WithoutRetry] to disable retries.
	MaxRetries int
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = 2 * time.Second
	}
	if b.Multiplier == 0 {
		b.Multiplier = 2
	}
	if b.MaxElapsed == 0 {
		b.MaxElapsed = 30 * time.Second
	}
	return b
}

// Option configures a [Transport] at [New]. Options are applied in order, so
// a later one overrides an earlier one.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	rawURL         string
	user, pass     string
	credsSet       bool
	httpClient     *http.Client
	group          string
	instance       string
	logger         *slog.Logger
	backoff        Backoff
	noRetry        bool
	maxBatch       int
	maxBatchBytes  int
	maxCarried     int // bytes of the Kafka-Produced header; 0: no bound
	pollWindow     time.Duration
	requestTimeout time.Duration
	closeTimeout   time.Duration
	maxPartitions  int
	setupTimeout   time.Duration
	keepAlive      time.Duration // 0: none

	// Set by validate.
	base *url.URL // scheme://host[:port][/path], no trailing slash, no user info
}

func defaults() config {
	return config{
		logger:         slog.New(slog.DiscardHandler),
		maxBatch:       DefaultMaxBatch,
		maxBatchBytes:  DefaultMaxBatchBytes,
		maxCarried:     DefaultMaxCarriedAnswer,
		pollWindow:     DefaultPollWindow,
		requestTimeout: DefaultRequestTimeout,
		closeTimeout:   DefaultCloseTimeout,
		maxPartitions:  DefaultMaxPartitions,
		setupTimeout:   DefaultSetupTimeout,
		keepAlive:      DefaultInstanceKeepAlive,
	}
}

// ErrConfig is wrapped by every error [New] and [FromEnv] return for a bad
// configuration.
var ErrConfig = errors.New("upstash: bad configuration")

func (c *config) validate() error {
	base, user, err := parseBaseURL(c.rawURL)
	if err != nil {
		return err
	}
	c.base = base
	if user != nil && !c.credsSet {
		c.user = user.Username()
		c.pass, _ = user.Password()
		c.credsSet = true
	}
	if c.credsSet && c.user == "" && c.pass != "" {
		return fmt.Errorf("%w: password given without a username", ErrConfig)
	}
	if c.logger == nil {
		return fmt.Errorf("%w: nil logger", ErrConfig)
	}
	if c.maxBatch < 1 {
		return fmt.Errorf("%w: max batch %d: must be at least 1", ErrConfig, c.maxBatch)
	}
	if c.maxCarried < 0 {
		return fmt.Errorf("%w: max carried answer %d: must be at least 0", ErrConfig, c.maxCarried)
	}
	if c.maxBatchBytes < 1 {
		return fmt.Errorf("%w: max batch bytes %d: must be at least 1", ErrConfig, c.maxBatchBytes)
	}
	if c.pollWindow <= 0 || c.pollWindow > maxServerTimeout {
		return fmt.Errorf("%w: poll window %v: must be in (0, %v]", ErrConfig, c.pollWindow, maxServerTimeout)
	}
	if c.requestTimeout <= 0 {
		return fmt.Errorf("%w: request timeout %v: must be positive", ErrConfig, c.requestTimeout)
	}
	if c.closeTimeout <= 0 {
		return fmt.Errorf("%w: close timeout %v: must be positive", ErrConfig, c.closeTimeout)
	}
	if c.setupTimeout <= 0 {
		return fmt.Errorf("%w: setup timeout %v: must be positive", ErrConfig, c.setupTimeout)
	}
	if c.keepAlive < 0 || (c.keepAlive > 0 && c.keepAlive < time.Millisecond) {
		return fmt.Errorf("%w: instance keep-alive %v: must be 0 (none) or at least 1ms", ErrConfig, c.keepAlive)
	}
	if c.maxPartitions < 1 {
		return fmt.Errorf("%w: max partitions %d: must be at least 1", ErrConfig, c.maxPartitions)
	}
	b := c.backoff
	if b.Initial < 0 || b.Max < 0 || b.MaxElapsed < 0 || b.MaxRetries < 0 || b.Multiplier < 0 ||
		(b.Multiplier != 0 && b.Multiplier < 1) {
		return fmt.Errorf("%w: backoff %+v: durations and retries must not be negative, multiplier must be >= 1", ErrConfig, b)
	}
	c.backoff = b.withDefaults()
	if c.backoff.Max < c.backoff.Initial {
		return fmt.Errorf("%w: backoff max %v is below initial %v", ErrConfig, c.backoff.Max, c.backoff.Initial)
	}
	return nil
}

// parseBaseURL accepts the forms a REST URL comes in: a full URL
// ("https://x-rest-kafka.upstash.io"), one with a port or a path prefix
// ("http://127.0.0.1:8080/kafka/"), or a bare host as the management API's
// rest_endpoint gives it ("x-rest-kafka.upstash.io", which gets https://).
// A trailing slash is dropped. User info, if present, is split off and
// returned so it never appears in logs or errors.
func parseBaseURL(raw string) (*url.URL, *url.Userinfo, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, nil, fmt.Errorf("%w: no REST URL: use WithURL or set UPSTASH_KAFKA_REST_URL", ErrConfig)
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the input, which could hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("%w: REST URL: %v", ErrConfig, err)
	}
	user := u.User
	u.User = nil
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, nil, fmt.Errorf("%w: REST URL %q: scheme must be http or https", ErrConfig, u.Redacted())
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, nil, fmt.Errorf("%w: REST URL %q: no host", ErrConfig, u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, nil, fmt.Errorf("%w: REST URL %q: bad port %q", ErrConfig, u.Redacted(), p)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, nil, fmt.Errorf("%w: REST URL %q: must not have a query or fragment", ErrConfig, u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, user, nil
}

// WithURL sets the REST endpoint, e.g.
// "https://tops-stingray-7863-eu1-rest-kafka.upstash.io" or
// "http://127.0.0.1:8080". A URL without a scheme gets https://; a port and
// a path prefix are kept; a trailing slash is ignored. User info in the URL
// is used as credentials unless [WithCredentials] is given. Required: New
// fails without it.
func WithURL(rawURL string) Option {
	return optionFunc(func(c *config) { c.rawURL = rawURL })
}

// WithCredentials sets the HTTP Basic credentials sent with every request.
// Default: none (for a local server without auth). They are never logged.
func WithCredentials(username, password string) Option {
	return optionFunc(func(c *config) {
		c.user, c.pass, c.credsSet = username, password, true
	})
}

// WithHTTPClient sets the HTTP client. Default: a client of the transport's
// own, with keep-alive connections and up to 512 idle connections per host
// (enough for hundreds of concurrent pollers and producers), closed by
// Close. A client given here is not closed, and is used through a copy
// whose CheckRedirect refuses redirects (see [ErrRedirect]); it should not set
// Client.Timeout shorter than the poll window plus the request timeout, or
// long polls fail.
func WithHTTPClient(client *http.Client) Option {
	return optionFunc(func(c *config) { c.httpClient = client })
}

// WithGroup sets the consumer group used by Subscribe when a Subscription
// leaves Group empty. Default: none (Group is then required).
func WithGroup(group string) Option {
	return optionFunc(func(c *config) { c.group = group })
}

// WithInstance sets the instance id used by Subscribe when a Subscription
// leaves Instance empty. Default: none (a unique id is generated per
// Subscribe). With a fixed instance, two Subscribes to the same group share
// one member id, and the later replaces the earlier.
func WithInstance(instance string) Option {
	return optionFunc(func(c *config) { c.instance = instance })
}

// WithLogger sets the logger for retries, failed cleanups and other
// events worth a line. Default: discard. Credentials are never logged.
func WithLogger(logger *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = logger })
}

// WithBackoff sets the retry schedule for 5xx, 429 and connection errors.
// Zero fields take their defaults (see [Backoff]).
func WithBackoff(b Backoff) Option {
	return optionFunc(func(c *config) { c.backoff, c.noRetry = b, false })
}

// WithoutRetry disables retries: every request is sent once.
func WithoutRetry() Option {
	return optionFunc(func(c *config) { c.noRetry = true })
}

// WithMaxBatch caps the number of messages one coalesced POST /produce
// carries. Default [DefaultMaxBatch]. The messages of one Produce call are
// never split, so a call larger than the cap is sent alone.
func WithMaxBatch(n int) Option {
	return optionFunc(func(c *config) { c.maxBatch = n })
}

// WithMaxBatchBytes caps the approximate JSON size of one coalesced
// POST /produce. Default [DefaultMaxBatchBytes]. As with [WithMaxBatch], one
// Produce call is never split.
func WithMaxBatchBytes(n int) Option {
	return optionFunc(func(c *config) { c.maxBatchBytes = n })
}

// WithMaxCarriedAnswer bounds, in bytes (approximately), the answer to the
// records one consume or fetch carries (the project's REST server takes
// records with a consume: see [transport.CarryingPoller]). The answer
// travels in a response header, Kafka-Produced, of about 80 bytes a record
// plus its topic's name, and proxies in front of a server cap a response's
// header block: nginx's default proxy_buffer_size is 4 KiB, and an answer
// over it is a 502 to the client, the records written nonetheless. Records
// beyond the bound are produced on their own (an rpc server's workers
// produce theirs at the same time as the poll). Default
// [DefaultMaxCarriedAnswer] (3 KiB, about 35 records with a short topic
// name). With no proxy between, or one with larger buffers, a larger bound
// (or 0, none but the server's 1,000 records) saves HTTP exchanges when
// many records are carried at once: with 256 concurrent rpc callers, 0.06
// instead of 0.08 HTTP requests a call. Negative is an error.
func WithMaxCarriedAnswer(n int) Option {
	return optionFunc(func(c *config) { c.maxCarried = n })
}

// WithPollWindow sets the longest one Poll waits on the server for records
// before returning an empty result (it waits less when its context ends
// sooner). Default [DefaultPollWindow]; at most 30s, the server's clamp.
func WithPollWindow(d time.Duration) Option {
	return optionFunc(func(c *config) { c.pollWindow = d })
}

// WithRequestTimeout bounds one HTTP attempt, beyond the server-side wait of
// a long poll. An attempt that exceeds it counts as a connection error and
// is retried. Default [DefaultRequestTimeout].
func WithRequestTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.requestTimeout = d })
}

// WithCloseTimeout bounds the best-effort POST /delete-consumer calls made
// when a consumer or the transport closes. Default [DefaultCloseTimeout].
func WithCloseTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.closeTimeout = d })
}

// WithMaxPartitions caps the partitions per topic the client believes a
// server about. Tail refuses a topic the server says has more (its error
// names the count), and the group consumer drops records of a partition at
// or above the cap. Default [DefaultMaxPartitions]; must be at least 1.
func WithMaxPartitions(n int) Option {
	return optionFunc(func(c *config) { c.maxPartitions = n })
}

// WithSetupTimeout bounds each Tail and Subscribe call as a whole (its
// requests and their retries), on top of its context's deadline, so that a
// caller that cannot pass a context, such as rpc.NewClient, cannot hang on a
// slow or trickling server. When it passes, the call fails with an error
// wrapping context.DeadlineExceeded that names this option. Default
// [DefaultSetupTimeout]; must be positive.
func WithSetupTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.setupTimeout = d })
}

// WithInstanceKeepAlive sets how often a consumer made by Subscribe names
// its instance to the server while its owner is not polling, so that the
// server does not close the instance as idle under a busy owner: an rpc
// server whose workers all run long handlers stops polling, and kafka-rest
// closes an instance no request named for its --instance-expiry (5 minutes
// by default), whatever the max poll interval, handing its partitions and
// the records being handled to the other members. The keep-alive is GET
// /committed/{group}/{instance} with no body, a read of the committed
// offsets of the partitions the instance owns; it is sent only when
// neither a consume nor a keep-alive named the instance for d, so a
// consumer that polls more often sends none. It stops once the owner has
// not polled for its max poll interval (Subscription.MaxPollInterval, or 5
// minutes, the server's default, when that is zero): a stuck owner is
// dropped by its server all the same, and its instance then expires. It
// stops too when the instance was replaced (transport.ErrFenced: the
// consumer's Poll and Commit then fail with it, as after a Poll that met
// the fence), and
// until the next Poll when the server refuses it (the instance is gone),
// and ends with Close.
//
// Default [DefaultInstanceKeepAlive] (1 minute). A server with a shorter
// instance expiry needs d well under it (a third or less). 0 turns the
// keep-alive off: the instance then lives only as long as the owner
// polls or commits within the server's expiry. Negative, or positive under
// 1ms, is an error.
func WithInstanceKeepAlive(d time.Duration) Option {
	return optionFunc(func(c *config) { c.keepAlive = d })
}
