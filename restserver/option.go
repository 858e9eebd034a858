package restserver

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults of the [Server] options.
const (
	// DefaultMaxMessageBytes is the default largest record (key + value +
	// header keys and values) a produce may carry: 1 MiB, Upstash's limit.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultMaxBodyBytes is the default largest request body: 16 MiB.
	DefaultMaxBodyBytes = 16 << 20
	// DefaultMaxTimeout is the default clamp for a request's timeout: 30 s.
	DefaultMaxTimeout = 30 * time.Second
	// DefaultInstanceExpiry is the default idle time after which a
	// consumer instance is closed: 5 min.
	DefaultInstanceExpiry = 5 * time.Minute
	// DefaultFetchMaxRecords is the default largest number of records one
	// /fetch returns per topic-partition-offset: 500.
	DefaultFetchMaxRecords = 500
	// DefaultFetchMaxBytes is the default cap on the records of one /fetch
	// answer, like Kafka's fetch.max.bytes: 16 MiB (Kafka's consumer has
	// 50 MiB; here one answer stays the size of the largest request body).
	DefaultFetchMaxBytes = 16 << 20
	// DefaultFetchMaxPartitionBytes is the default cap on the records of
	// one partition in a /fetch answer, Kafka's max.partition.fetch.bytes
	// default: 1 MiB.
	DefaultFetchMaxPartitionBytes = 1 << 20
	// DefaultFetchMaxPartitions is the default largest number of
	// partitions one /fetch may name, after merging repeats: 10,000, the
	// REST client's own cap on partitions per topic (transport/upstash
	// DefaultMaxPartitions), so that its Tail of any topic it accepts can
	// fetch.
	DefaultFetchMaxPartitions = 10_000
	// DefaultMaxNameLength is the default longest consumer group or
	// instance name, in bytes: 249, Kafka's limit for topic names.
	DefaultMaxNameLength = 249
	// DefaultFailedLoginLimit is the default number of failed logins a
	// client address may make per minute (and at once): 60.
	DefaultFailedLoginLimit = 60
	// DefaultReadHeaderTimeout is the default time [Server.Serve] gives a
	// client to send a request's headers: 10 s.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout is the default time [Server.Serve] gives a client
	// to send a whole request, headers and body: 60 s.
	DefaultReadTimeout = 60 * time.Second
	// DefaultIdleTimeout is the default time [Server.Serve] keeps an idle
	// keep-alive connection open waiting for its next request: 30 s (well
	// under the 120 s that let idle clients pile up connections).
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxConnections is the default largest number of connections
	// [Server.Serve] holds open: 4096.
	DefaultMaxConnections = 4096
	// DefaultMaxInstances is the default largest number of consumer
	// instances the server holds at once: 1000. Each one is a group member
	// of the backend (in front of Kafka, a client with its own goroutines
	// and connections), so their number must be bounded.
	DefaultMaxInstances = 1000
	// DefaultWriteMargin is what the default write timeout adds to the max
	// timeout (see [Timeouts.Write]): 30 s.
	DefaultWriteMargin = 30 * time.Second
)

// Option configures a [Server]. Options are applied in order over the
// defaults; New then validates the result and fails on a bad value.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type credential struct{ username, password string }

type config struct {
	credentials     []credential
	users           []User
	maxMessageBytes int
	maxBodyBytes    int64
	maxTimeout      time.Duration
	instanceExpiry  time.Duration
	fetchMaxRecords int
	fetchMaxBytes   int
	fetchPartBytes  int
	fetchMaxParts   int
	maxNameLength   int
	maxConns        int
	maxInstances    int
	failedLogins    int
	logger          *slog.Logger
	accessLog       *slog.Logger
	timeouts        Timeouts
}

func defaults() config {
	return config{
		maxMessageBytes: DefaultMaxMessageBytes,
		maxBodyBytes:    DefaultMaxBodyBytes,
		maxTimeout:      DefaultMaxTimeout,
		instanceExpiry:  DefaultInstanceExpiry,
		fetchMaxRecords: DefaultFetchMaxRecords,
		fetchMaxBytes:   DefaultFetchMaxBytes,
		fetchPartBytes:  DefaultFetchMaxPartitionBytes,
		fetchMaxParts:   DefaultFetchMaxPartitions,
		maxNameLength:   DefaultMaxNameLength,
		maxConns:        DefaultMaxConnections,
		maxInstances:    DefaultMaxInstances,
		failedLogins:    DefaultFailedLoginLimit,
		logger:          slog.Default(),
	}
}

func (c *config) validate() error {
	var errs []error
	errs = append(errs, c.checkUsers()...)
	for i, cr := range c.credentials {
		switch {
		case cr.username == "":
			errs = append(errs, fmt.Errorf("credential %d: empty username", i))
		case strings.Contains(cr.username, ":"):
			errs = append(errs, fmt.Errorf("credential %d: username contains ':', which HTTP Basic auth cannot carry", i))
		}
		if cr.password == "" {
			errs = append(errs, fmt.Errorf("credential %d: empty password", i))
		}
	}
	if c.maxMessageBytes <= 0 {
		errs = append(errs, fmt.Errorf("max message bytes must be positive, got %d", c.maxMessageBytes))
	}
	if c.maxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("max body bytes must be positive, got %d", c.maxBodyBytes))
	}
	if c.maxTimeout <= 0 {
		errs = append(errs, fmt.Errorf("max timeout must be positive, got %v", c.maxTimeout))
	}
	if c.maxInstances <= 0 {
		errs = append(errs, fmt.Errorf("max instances must be positive, got %d", c.maxInstances))
	}
	if c.instanceExpiry <= 0 {
		errs = append(errs, fmt.Errorf("instance expiry must be positive, got %v", c.instanceExpiry))
	}
	if c.fetchMaxRecords <= 0 {
		errs = append(errs, fmt.Errorf("fetch max records must be positive, got %d", c.fetchMaxRecords))
	}
	if c.fetchMaxBytes <= 0 || c.fetchPartBytes <= 0 || c.fetchMaxParts <= 0 {
		errs = append(errs, fmt.Errorf("fetch max bytes, partition bytes and partitions must be positive, got %d, %d and %d",
			c.fetchMaxBytes, c.fetchPartBytes, c.fetchMaxParts))
	}
	if c.failedLogins <= 0 {
		errs = append(errs, fmt.Errorf("failed login limit must be positive, got %d", c.failedLogins))
	}
	if c.maxConns <= 0 {
		errs = append(errs, fmt.Errorf("max connections must be positive, got %d", c.maxConns))
	}
	if c.maxNameLength <= 0 {
		errs = append(errs, fmt.Errorf("max name length must be positive, got %d", c.maxNameLength))
	}
	errs = append(errs, c.timeouts.check(c.maxTimeout)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restserver: invalid option: %w", err)
	}
	return nil
}

// checkUsers checks the users of [WithUsers] and refuses a name given
// twice (among them and the credentials).
func (c *config) checkUsers() []error {
	var errs []error
	seen := map[string]bool{}
	for _, cr := range c.credentials {
		seen[cr.username] = true
	}
	for i, u := range c.users {
		if err := u.check(); err != nil {
			errs = append(errs, fmt.Errorf("user %d: %w", i, err))
		} else if seen[u.Name] {
			errs = append(errs, fmt.Errorf("user %d: the name %q is given twice", i, u.Name))
		}
		seen[u.Name] = true
	}
	return errs
}

// allUsers is every user: the credentials (as admins), then the users.
func (c *config) allUsers() []User {
	out := make([]User, 0, len(c.credentials)+len(c.users))
	for _, cr := range c.credentials {
		out = append(out, User{Name: cr.username, Password: cr.password, Admin: true})
	}
	return append(out, c.users...)
}

// WithCredentials adds one accepted HTTP Basic username/password pair, an
// admin with every right (see [WithUsers] for users with fewer); use
// it several times for several pairs. With no credentials at all,
// authentication is OFF and every request is served: fit only for a
// loopback development server (New logs a warning). Neither username nor
// password may be empty, and the username may not contain ':'.
// Credentials are compared in constant time and never logged.
func WithCredentials(username, password string) Option {
	return optionFunc(func(c *config) {
		c.credentials = append(c.credentials, credential{username, password})
	})
}

// WithMaxMessageBytes sets the largest record a produce or webhook may
// carry, counted as key + value + every header key and value, in bytes.
// A larger record is refused with 413 and nothing of its request is
// written. Default [DefaultMaxMessageBytes] (1 MiB).
func WithMaxMessageBytes(n int) Option {
	return optionFunc(func(c *config) { c.maxMessageBytes = n })
}

// WithMaxBodyBytes sets the largest request body; a larger one is refused
// with 413. Default [DefaultMaxBodyBytes] (16 MiB).
func WithMaxBodyBytes(n int64) Option {
	return optionFunc(func(c *config) { c.maxBodyBytes = n })
}

// WithMaxTimeout sets the clamp for the timeout a consume, fetch,
// committed or offsets request asks for: a longer one is cut to d.
// Default [DefaultMaxTimeout] (30 s).
func WithMaxTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxTimeout = d })
}

// WithInstanceExpiry sets how long a consumer instance may go without a
// request before the server closes it (committing its positions first if
// auto-commit is on) and releases its partitions. An instance that is
// serving a request never expires. Default [DefaultInstanceExpiry] (5 min).
// kafkarpc's REST transport names its instance every minute while its user
// is busy (transport/upstash's WithInstanceKeepAlive), up to its max poll
// interval; an expiry shorter than about three times that interval takes
// a shorter one there.
func WithInstanceExpiry(d time.Duration) Option {
	return optionFunc(func(c *config) { c.instanceExpiry = d })
}

// WithMaxInstances caps the consumer instances the server holds at once (of
// all users). A consume that would create one more is answered 503 with
// Retry-After until some are deleted or expire. Default
// [DefaultMaxInstances] (1000).
func WithMaxInstances(n int) Option {
	return optionFunc(func(c *config) { c.maxInstances = n })
}

// WithFetchMaxRecords sets the largest number of records one /fetch
// returns for each topic-partition-offset it names. Default
// [DefaultFetchMaxRecords] (500).
func WithFetchMaxRecords(n int) Option {
	return optionFunc(func(c *config) { c.fetchMaxRecords = n })
}

// WithFetchMaxBytes caps the records of one /fetch answer, as Kafka's
// fetch.max.bytes does: records are added until the next would pass n
// bytes, counting each record's key, value and header keys and values
// plus [RecordOverheadBytes]; the first record of an answer always comes,
// whatever its size, so a reader makes progress. (The JSON answer can be
// larger: control bytes are escaped.) The answer is filled in the order
// the fetch names its partitions: a client reading many partitions should
// vary that order from one fetch to the next, as Kafka's consumer does,
// else while the first ones hold more than an answer the others are not
// read. Default [DefaultFetchMaxBytes]
// (16 MiB). /consume answers are capped by the backend's own limits (see
// memory.WithFetchMaxBytes).
func WithFetchMaxBytes(n int) Option {
	return optionFunc(func(c *config) { c.fetchMaxBytes = n })
}

// WithFetchMaxPartitionBytes caps the records of each partition in one
// /fetch answer, counted as for [WithFetchMaxBytes], as Kafka's
// max.partition.fetch.bytes does. Default [DefaultFetchMaxPartitionBytes]
// (1 MiB).
func WithFetchMaxPartitionBytes(n int) Option {
	return optionFunc(func(c *config) { c.fetchPartBytes = n })
}

// WithFetchMaxPartitions caps the partitions one /fetch may name; a
// partition named several times counts once (its entries are merged at
// the lowest offset). A fetch naming more is refused with 400. Default
// [DefaultFetchMaxPartitions] (10,000).
func WithFetchMaxPartitions(n int) Option {
	return optionFunc(func(c *config) { c.fetchMaxParts = n })
}

// WithMaxNameLength caps consumer group and instance names, in bytes: a
// request naming a longer one (consume, commit, committed,
// delete-consumer) is refused with 400 before anything is made. Default
// [DefaultMaxNameLength] (249, Kafka's limit for topic names).
func WithMaxNameLength(n int) Option {
	return optionFunc(func(c *config) { c.maxNameLength = n })
}

// WithMaxConnections caps the connections [Server.Serve] holds open (see
// Serve for what happens at the limit). Keep it below the process's file
// descriptor limit. Default [DefaultMaxConnections] (4096).
func WithMaxConnections(n int) Option {
	return optionFunc(func(c *config) { c.maxConns = n })
}

// WithFailedLoginLimit sets how many failed logins (401 answers) a client
// address (the connection's IP) may make per minute, all at once or spread
// out. An address over it is answered 429 with Retry-After, without its
// credentials being checked, until it has a try again (one per 60/n s).
// Default [DefaultFailedLoginLimit] (60).
func WithFailedLoginLimit(n int) Option {
	return optionFunc(func(c *config) { c.failedLogins = n })
}

// WithAccessLog writes one Info line per HTTP request to l, with message
// "access" and the client address, method, path, status, body bytes
// written and duration. The query string, headers, bodies and user names
// are never written: they can carry credentials (a /webhook query has user=
// and pass=; an Upstash-style username is half of the credential pair). Default (and nil): no access log.
func WithAccessLog(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.accessLog = l })
}

// WithLogger sets the logger. Requests are logged at Debug level (method,
// path, status, duration; never the query string, headers or credentials),
// backend faults at Error. Default (and nil): slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = slog.Default()
		}
		c.logger = l
	})
}

// timeoutFor turns a requested timeout in ms into a duration: absent means
// def, values are clamped to the configured maximum.
func (c *config) timeoutFor(ms *float64, def time.Duration) (time.Duration, error) {
	if ms == nil {
		return min(def, c.maxTimeout), nil
	}
	if *ms < 0 || *ms != *ms {
		return 0, badRequest("timeout must be a non-negative number of milliseconds")
	}
	if *ms >= float64(c.maxTimeout/time.Millisecond) {
		return c.maxTimeout, nil
	}
	return time.Duration(*ms * float64(time.Millisecond)), nil
}

// Timeouts bound how long [Server.Serve] lets one client hold a connection,
// so that a slow or stalled client (slowloris: a connection opened and fed
// a byte at a time, or never fed) cannot keep one forever. A connection
// that overruns one is closed; a request body still arriving when Read
// passes is answered 408. A zero field takes its default. They apply to
// Serve only: a Server mounted in another http.Server has that server's
// timeouts.
type Timeouts struct {
	// ReadHeader bounds the time from the start of a request (a new
	// connection, or the end of an idle wait) to the end of its headers.
	// Default [DefaultReadHeaderTimeout].
	ReadHeader time.Duration
	// Read bounds the time to read a whole request, headers and body. It
	// also bounds how long a request may run (net/http ends the request's
	// context when the connection's read deadline passes), so it must be
	// longer than the max timeout (see [WithMaxTimeout]) or long polls are
	// cut short. Default: the larger of [DefaultReadTimeout] and the max
	// timeout plus [DefaultWriteMargin].
	Read time.Duration
	// Write bounds the time from the end of a request's headers to the end
	// of its response; it must be longer than the max timeout, or long
	// polls are cut off. Default: the max timeout plus [DefaultWriteMargin].
	Write time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request. Default [DefaultIdleTimeout].
	Idle time.Duration
}

// WithTimeouts sets the connection timeouts of [Server.Serve]; zero fields
// keep their defaults (see [Timeouts]). New fails on a negative value, a
// Read below ReadHeader, or a Read or Write not longer than the max
// timeout.
func WithTimeouts(t Timeouts) Option {
	return optionFunc(func(c *config) { c.timeouts = t })
}

// withDefaults fills t's zero fields for a server whose longest request
// wait is maxTimeout.
func (t Timeouts) withDefaults(maxTimeout time.Duration) Timeouts {
	if t.ReadHeader == 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.Read == 0 {
		t.Read = max(DefaultReadTimeout, maxTimeout+DefaultWriteMargin)
	}
	if t.Write == 0 {
		t.Write = maxTimeout + DefaultWriteMargin
	}
	if t.Idle == 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

func (t Timeouts) check(maxTimeout time.Duration) []error {
	var errs []error
	if t.ReadHeader < 0 || t.Read < 0 || t.Write < 0 || t.Idle < 0 {
		errs = append(errs, fmt.Errorf("timeouts must not be negative, got %+v", t))
	}
	d := t.withDefaults(maxTimeout)
	if d.Read < d.ReadHeader {
		errs = append(errs, fmt.Errorf("read timeout %v is below the read header timeout %v", d.Read, d.ReadHeader))
	}
	if d.Read <= maxTimeout || d.Write <= maxTimeout {
		errs = append(errs, fmt.Errorf("read timeout %v and write timeout %v must be longer than the max timeout %v", d.Read, d.Write, maxTimeout))
	}
	return errs
}
