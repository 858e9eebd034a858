// Command kafka-rest serves the Upstash Kafka REST API over an embedded
// broker, so code written for Upstash Kafka (the @upstash/kafka SDK, plain
// HTTP clients) keeps working against a local server by changing one URL.
//
// Usage:
//
//	kafka-rest [--addr 127.0.0.1:8080] [--topics name[:partitions],...]
//	           [--partitions 1] [--auto-create=true] [--max-message-bytes 1048576]
//	           [--username U --password P] [--users FILE] [--instance-expiry 5m] [--log-level info]
//	           [--data-dir DIR [--fsync always|interval=DUR|never]]
//	           [limits: see below]
//
// Limits, each a flag with Kafka's name where Kafka has one:
//
//	--fetch-max-bytes 16777216         bytes of records in one /fetch or /consume answer
//	--max-partition-fetch-bytes 1048576  bytes of one partition's records in one answer
//	--fetch-max-partitions 10000       partitions one /fetch may name
//	--max-name-length 249              bytes of a consumer group or instance name
//	--retention-records 100000         records kept per partition
//	--retention-bytes 67108864         bytes of records kept per partition
//	--retention-age 168h0m0s           age (since append) of records kept
//	--offsets-retention 168h0m0s       keep an empty group's committed offsets this long
//	--max-connections 4096             connections held open (kept under the file limit)
//	--max-instances 1000               consumer instances held at once (then 503)
//	--idle-timeout 30s                 keep-alive connections idle this long are closed
//	--failed-login-limit 60            failed logins per client address per minute (then 429)
//	--max-topics 10000                 topics (auto-creation past it: 400)
//	--max-total-partitions 100000      partitions of all topics together
//
// The first record of an answer always comes, whatever its size. A request
// over a limit gets a JSON error (400, 413, 429 or 503 with Retry-After) and
// the server stays up.
//
// --users FILE adds users with rights, one JSON object a line:
//
//	# comments and blank lines are skipped
//	{"name": "orders-app", "password": "…", "produce": ["orders"], "consume": ["orders.*"]}
//	{"name": "ops", "password": "…", "admin": true}
//
// "produce" lists the topics the user may write (/produce, /webhook),
// "consume" those it may read (/consume, /commit, /committed, /fetch,
// /offsets): a name exactly, "prefix*" every topic starting with prefix,
// "*" every topic. "admin" grants every right, /consumers and deleting
// any consumer instance. Each user has its own namespace of consumer
// instance names, so no user can reach another's instance. /topics lists the topics a user
// may produce to or consume from. A denied request gets 403. An unknown
// field or bad line stops the server with an error naming the line. The
// --username/--password pair is an admin.
//
// Credentials may come from KAFKA_REST_USERNAME and KAFKA_REST_PASSWORD
// instead of flags (preferable: flags show in the process list). Without
// credentials authentication is off, which suits a loopback development
// server only. The server logs the URL it listens on (useful with
// --addr 127.0.0.1:0) and never logs credentials. SIGINT or SIGTERM shut it
// down gracefully: long polls end at once, requests in flight finish (up to
// 10 s).
//
// Operations: GET /healthz answers 200 while the process serves, GET
// /readyz 200 when the broker answers (else 503), both without credentials;
// GET /metrics is the Prometheus scrape (admin credentials when auth is on).
// --access-log logs one line per request, never credentials.
//
// At start it raises its soft limit on open files to the hard limit, and
// lowers --max-connections to stay 64 below it if needed, together with
// --max-total-partitions with --data-dir (each partition keeps a file
// open) or --max-instances with --brokers (each instance is a Kafka client
// with connections of its own).
//
// Without --data-dir, records live in memory only and are lost at exit.
// With --data-dir DIR, records, topics and consumer groups' committed
// offsets are also written to DIR (segment files with a CRC per batch) and
// recovered at the next start; a produce is answered only once its records
// are written to the operating system, so killing the process loses
// nothing acknowledged. --fsync decides what a machine crash can lose:
// always (the default: fsync before answering, concurrent produces sharing
// one fsync) loses nothing acknowledged; interval=DUR (e.g. interval=100ms)
// loses at most the last DUR; never leaves flushing to the OS (Linux:
// about 30 s). Retention deletes whole segment files. A DIR in use by
// another running kafka-rest is refused at start; a write that fails (a
// full disk) is answered 507 and not acknowledged.
//
// With --brokers host:port,... kafka-rest is instead a proxy in front of
// that Kafka cluster (restserver/kafkabackend), with SASL and TLS from
// --kafka-* flags or the KAFKA_* environment (transport/kafka.Flags); see
// kafka.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lmittmann/tint"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-rest:", err)
		stop()
		os.Exit(1)
	}
}

// shutdownGrace bounds how long requests in flight may take at shutdown.
const shutdownGrace = 10 * time.Second

// flags are kafka-rest's command line, parsed.
type flags struct {
	addr, username, password, topics, logLevel string
	users, dataDir, fsync                      string
	partitions, maxMessage                     int
	autoCreate                                 bool
	accessLog                                  bool
	expiry                                     time.Duration
	limits                                     limits

	kafka          kafka.Flags     // --brokers and --kafka-*: proxy a Kafka cluster
	connectTimeout time.Duration   // bounds reaching the brokers at start
	explicit       map[string]bool // flags given on the command line
}

// limits are the flags that bound what one client can make the server do.
type limits struct {
	fetchMaxBytes, partitionFetchBytes, fetchMaxPartitions int
	maxTopics, maxPartitions, maxNameLength                int
	offsetsRetention, retentionAge                         time.Duration
	retentionRecords, maxConns, failedLogins               int
	maxInstances                                           int
	idleTimeout                                            time.Duration
	retentionBytes                                         int64
}

// limitFlags registers the limit flags.
func limitFlags(fs *flag.FlagSet, l *limits) {
	fs.IntVar(&l.fetchMaxBytes, "fetch-max-bytes", restserver.DefaultFetchMaxBytes,
		"cap on the records of one /fetch or /consume answer, in bytes (Kafka's fetch.max.bytes); the first record always comes")
	fs.IntVar(&l.partitionFetchBytes, "max-partition-fetch-bytes", restserver.DefaultFetchMaxPartitionBytes,
		"cap on one partition's records in one /fetch or /consume answer, in bytes (Kafka's max.partition.fetch.bytes)")
	fs.IntVar(&l.fetchMaxPartitions, "fetch-max-partitions", restserver.DefaultFetchMaxPartitions,
		"most partitions one /fetch may name (repeats merged); more is a 400")
	fs.IntVar(&l.maxNameLength, "max-name-length", restserver.DefaultMaxNameLength,
		"longest consumer group or instance name, in bytes; longer is a 400")
	fs.DurationVar(&l.offsetsRetention, "offsets-retention", 7*24*time.Hour,
		"delete a consumer group and its committed offsets this long after its last member left (Kafka's offsets.retention.minutes)")
	fs.IntVar(&l.retentionRecords, "retention-records", 100_000,
		"records kept per partition; older ones are dropped, read or not")
	fs.Int64Var(&l.retentionBytes, "retention-bytes", 64<<20,
		"bytes of records kept per partition (Kafka's retention.bytes); older records are dropped, read or not")
	fs.DurationVar(&l.retentionAge, "retention-age", 7*24*time.Hour,
		"drop records appended longer ago than this, at the partition's next append (Kafka's retention.ms)")
	fs.IntVar(&l.maxConns, "max-connections", restserver.DefaultMaxConnections,
		"most connections held open; at the limit a new one closes the longest idle one without credentials (else 503)")
	fs.IntVar(&l.maxInstances, "max-instances", restserver.DefaultMaxInstances,
		"most consumer instances held at once (each is a group member; in front of Kafka a client of its own); past it a new one is a 503")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", restserver.DefaultIdleTimeout, "close keep-alive connections idle for this long")
	fs.IntVar(&l.failedLogins, "failed-login-limit", restserver.DefaultFailedLoginLimit,
		"failed logins one client address may make per minute; past it 429 with Retry-After")
	fs.IntVar(&l.maxTopics, "max-topics", 10_000, "most topics the broker holds; creating more is a 400")
	fs.IntVar(&l.maxPartitions, "max-total-partitions", 100_000, "most partitions of all topics together; creating more is a 400")
}

// fileReserve is the open files kept out of the budget of connections and
// partitions: the listener, the logs, the data dir's lock and metadata
// log, a directory opened to sync it, a segment file while it is replaced.
const fileReserve = 64

// fitFileLimit raises the process's soft file limit to its hard limit and
// fits what holds files open under it, fileReserve aside: connections
// and, with a data dir (durable), partitions, each of which keeps its log
// segment open, or in front of Kafka (seeds > 0 seed brokers) consumer
// instances, each a Kafka client with connections of its own
// (instanceFiles). A limit that does not fit is lowered (with a warning
// when its flag was given, else an info line): past it a client gets a
// clear refusal (503 for a connection or an instance, 400 for a topic)
// where it would get "too many open files" from the accept loop, a 500
// from a topic's creation or a consume that hangs.
func (l *limits) fitFileLimit(log *slog.Logger, durable bool, seeds int, explicit map[string]bool) {
	// A limit the user set is lowered with a warning; a default, which
	// most file limits (65,536 is common) do not fit with --data-dir, with
	// an info line, so that a plain start warns of nothing.
	lowered := func(flag, msg string, args ...any) {
		level := slog.LevelInfo
		if explicit[flag] {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "kafka-rest: --"+flag+" lowered to fit the open file limit"+msg, args...)
	}
	soft, err := raiseFileLimit()
	if err != nil {
		log.Warn("kafka-rest: could not raise the open file limit", "err", err, "limit", soft)
	}
	conns, parts, insts := l.maxConns, l.maxPartitions, l.maxInstances
	if seeds > 0 { // in front of Kafka: no data dir
		conns, insts = fitShare(soft, conns, insts, instanceFiles(seeds))
	} else {
		conns, parts = fitFiles(soft, conns, parts, durable)
	}
	if conns != l.maxConns {
		lowered("max-connections", "",
			"asked", l.maxConns, "now", conns, "file_limit", soft)
		l.maxConns = conns
	}
	if parts != l.maxPartitions {
		lowered("max-total-partitions", " (with --data-dir each partition keeps a file open)",
			"asked", l.maxPartitions, "now", parts, "file_limit", soft)
		l.maxPartitions = parts
	}
	if insts != l.maxInstances {
		lowered("max-instances", " (in front of Kafka each consumer instance is a client with connections of its own)",
			"asked", l.maxInstances, "now", insts, "files_each", instanceFiles(seeds), "file_limit", soft)
		l.maxInstances = insts
	}
}

// instanceFiles is about the files a consumer instance holds in front of
// Kafka: its client's connections to a seed broker and to the group's
// coordinator (two: heartbeats, and joins and syncs; 4 in all against a
// one-broker cluster, measured), and one to each broker it fetches from,
// counted as the seed brokers given.
func instanceFiles(seeds int) int { return 3 + max(seeds, 1) }

// fitFiles returns the connection and partition limits that fit a file
// limit of soft (0: unknown, nothing changes), fileReserve kept aside.
// Partitions count only when durable. When both do not fit, connections
// keep what partitions leave them, and at least half the budget; a file
// limit of fileReserve or less leaves the limits as they are (the
// process cannot keep to it anyway).
func fitFiles(soft uint64, conns, parts int, durable bool) (int, int) {
	if !durable {
		conns, _ = fitShare(soft, conns, 0, 1)
		return conns, parts
	}
	return fitShare(soft, conns, parts, 1)
}

// fitShare returns the limits of connections and of n holders of each
// files open that fit a file limit of soft, as fitFiles does for
// partitions (each = 1); n is 0 when only connections count.
func fitShare(soft uint64, conns, n, each int) (int, int) {
	if soft <= fileReserve+1 || soft > math.MaxInt32 {
		return conns, n
	}
	budget := int(soft - fileReserve)
	if n == 0 {
		return min(conns, budget), n
	}
	if conns+n*each <= budget {
		return conns, n
	}
	conns = min(conns, max(budget/2, budget-min(n, budget)*each))
	return conns, min(n, max((budget-conns)/each, 1))
}

// serverOptions are the REST server's options for l.
func (l limits) serverOptions() []restserver.Option {
	return []restserver.Option{
		restserver.WithFetchMaxBytes(l.fetchMaxBytes),
		restserver.WithFetchMaxPartitionBytes(l.partitionFetchBytes),
		restserver.WithFetchMaxPartitions(l.fetchMaxPartitions),
		restserver.WithMaxNameLength(l.maxNameLength),
		restserver.WithMaxConnections(l.maxConns),
		restserver.WithMaxInstances(l.maxInstances),
		restserver.WithFailedLoginLimit(l.failedLogins),
		restserver.WithTimeouts(restserver.Timeouts{Idle: l.idleTimeout}),
	}
}

// brokerOptions are the embedded broker's options for l.
func (l limits) brokerOptions() []memory.Option {
	return []memory.Option{
		memory.WithFetchMaxBytes(l.fetchMaxBytes, l.partitionFetchBytes),
		memory.WithMaxTopics(l.maxTopics, l.maxPartitions),
		memory.WithOffsetsRetention(l.offsetsRetention),
		memory.WithRetention(l.retentionRecords, l.retentionBytes),
		memory.WithRetentionAge(l.retentionAge),
	}
}

// parseFlags parses args; help (true) goes to stdout.
func parseFlags(args []string, stdout io.Writer) (f flags, help bool, err error) {
	fs := flag.NewFlagSet("kafka-rest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on (port 0 picks a free one)")
	fs.StringVar(&f.username, "username", "", "Basic auth username (default $KAFKA_REST_USERNAME; none: auth off)")
	fs.StringVar(&f.password, "password", "", "Basic auth password (default $KAFKA_REST_PASSWORD)")
	fs.StringVar(&f.users, "users", "", "`file` of users with rights, one JSON object a line: "+
		`{"name": N, "password": P, "produce": [T...], "consume": [T...], "admin": false}; `+
		`T is a topic, "prefix*" or "*"; '#' lines are comments; the --username pair is an admin`)
	fs.StringVar(&f.topics, "topics", "", "topics to create at start, as `name[:partitions],...` (without a count: --partitions, or the count the data dir already holds)")
	fs.IntVar(&f.partitions, "partitions", 1, "partition count of topics created without one, and of auto-created topics")
	fs.BoolVar(&f.autoCreate, "auto-create", true, "create unknown topics on first produce or consume (else 404)")
	fs.IntVar(&f.maxMessage, "max-message-bytes", restserver.DefaultMaxMessageBytes, "largest record (key + value + headers), in bytes")
	fs.DurationVar(&f.expiry, "instance-expiry", restserver.DefaultInstanceExpiry, "close consumer instances idle for this long")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.accessLog, "access-log", false, "log one line per HTTP request (msg=access: client address, method, path, status, bytes, duration; never the query, headers or credentials)")
	fs.StringVar(&f.dataDir, "data-dir", "", "`directory` to keep records, topics and committed offsets in, recovered at start (default: memory only, lost at exit)")
	fs.StringVar(&f.fsync, "fsync", "always", "with --data-dir, when to fsync: always (before each answer; group commit), interval=DUR (every DUR), or never (the OS decides)")
	limitFlags(fs, &f.limits)
	f.kafka.Register(fs)
	fs.DurationVar(&f.connectTimeout, "kafka-connect-timeout", 15*time.Second, "with --brokers: give up (exit 1) if no broker answers within this")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage of kafka-rest: an Upstash-compatible Kafka REST server over an embedded broker.")
			fs.PrintDefaults()
			return f, true, nil
		}
		return f, false, err
	}
	if fs.NArg() > 0 {
		return f, false, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	f.explicit = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.explicit[fl.Name] = true })
	if f.explicit["fsync"] && f.dataDir == "" {
		return f, false, errors.New("--fsync applies to --data-dir: without it nothing is written to disk")
	}
	if f.username == "" {
		f.username = os.Getenv("KAFKA_REST_USERNAME")
	}
	if f.password == "" {
		f.password = os.Getenv("KAFKA_REST_PASSWORD")
	}
	if (f.username == "") != (f.password == "") {
		return f, false, errors.New("give both a username and a password, or neither")
	}
	return f, false, nil
}

// newBroker makes the embedded broker with f's topics. The broker validates
// its options; its error names the bad one.
func newBroker(f flags, log *slog.Logger) (*memory.Broker, error) {
	opts := append([]memory.Option{
		memory.WithPartitions(f.partitions),
		memory.WithAutoCreate(f.autoCreate),
		memory.WithMaxMessageBytes(f.maxMessage),
	}, f.limits.brokerOptions()...)
	var (
		broker *memory.Broker
		err    error
	)
	if f.dataDir == "" {
		broker, err = memory.New(opts...)
	} else {
		policy, perr := memory.ParseFsyncPolicy(f.fsync)
		if perr != nil {
			return nil, fmt.Errorf("--fsync: %w", perr)
		}
		start := time.Now()
		broker, err = memory.NewDurable(f.dataDir, append(opts, memory.WithFsync(policy), memory.WithLogger(log))...)
		if err == nil {
			topics, held := broker.Topics(), 0
			for _, n := range topics {
				held += int(n)
			}
			log.Info("kafka-rest: data dir recovered", "data_dir", f.dataDir, "fsync", policy.String(),
				"topics", len(topics), "partitions", held, "took", time.Since(start).Round(time.Millisecond))
			if held > f.limits.maxPartitions {
				log.Warn("kafka-rest: the data dir holds more partitions than --max-total-partitions allows (lowered to fit the open file limit?): no topic can be created, and the partitions' segment files take turns being open (the least recently written is closed)",
					"partitions", held, "max_total_partitions", f.limits.maxPartitions)
			}
		} else {
			return nil, fmt.Errorf("--data-dir %s: %w", f.dataDir, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("--partitions, --max-message-bytes or a limit flag: %w", err)
	}
	topics, err := parseTopics(f.topics, 0)
	if err == nil {
		existing := broker.Topics()
		for _, t := range topics {
			n := t.partitions
			if n == 0 {
				// No count given: a topic the data dir already holds
				// keeps its count; a new one gets --partitions.
				if _, ok := existing[t.name]; ok {
					continue
				}
				n = f.partitions
			}
			if err = broker.CreateTopic(t.name, n); err != nil {
				err = fmt.Errorf("--topics: %w", err)
				break
			}
		}
	}
	if err != nil {
		broker.Close()
		return nil, err
	}
	return broker, nil
}

// run parses args, serves until ctx ends, then shuts down gracefully. Help
// goes to stdout, logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, help, err := parseFlags(args, stdout)
	if help || err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := newLogger(stderr, level)
	// Before the broker, which takes its partition limit from f.limits.
	seeds := 0
	if f.kafka.Wanted() {
		if kc, err := f.kafka.Config(); err == nil { // else newBackend reports it
			seeds = len(kc.Brokers)
		}
	}
	f.limits.fitFileLimit(log, f.dataDir != "" && !f.kafka.Wanted(), seeds, f.explicit)
	backend, topics, closeBackend, err := newBackend(ctx, f, log)
	if err != nil {
		if ce := (contactError{}); ctx.Err() != nil && errors.As(err, &ce) {
			// SIGTERM while reaching Kafka: a stop asked for, not a
			// failure (systemd and supervisord would report one). A flag
			// or data dir error is one whatever the ctx.
			log.Info("kafka-rest: stopped before it started", "err", err)
			return nil
		}
		return err
	}
	defer closeBackend()
	opts := []restserver.Option{
		restserver.WithLogger(log),
		restserver.WithMaxMessageBytes(f.maxMessage),
		restserver.WithInstanceExpiry(f.expiry),
	}
	opts = append(opts, f.limits.serverOptions()...)
	if f.accessLog {
		opts = append(opts, restserver.WithAccessLog(log))
	}
	if f.username != "" {
		opts = append(opts, restserver.WithCredentials(f.username, f.password))
	}
	if f.users != "" {
		users, err := readUsersFile(f.users)
		if err != nil {
			return err
		}
		opts = append(opts, restserver.WithUsers(users...))
	}
	srv, err := restserver.New(backend, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", f.addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("kafka-rest: listening", "url", "http://"+ln.Addr().String(),
		"auth", f.username != "" || f.users != "", "topics", topics, "auto_create", f.autoCreate)

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("kafka-rest: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	// A stop right after the start may shut the server down before the
	// Serve above began: it then returns http.ErrServerClosed, which is
	// no failure.
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("kafka-rest: stopped")
	return nil
}

// readUsersFile reads the --users file.
func readUsersFile(path string) ([]restserver.User, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--users: %w", err)
	}
	defer fh.Close()
	users, err := restserver.ReadUsers(fh)
	if err != nil {
		return nil, fmt.Errorf("--users %s: %w", path, err)
	}
	return users, nil
}

type topicSpec struct {
	name       string
	partitions int
}

// parseTopics parses "name[:partitions],..."; a missing count is def
// (newBroker passes 0: "the default, unless the topic exists").
func parseTopics(s string, def int) ([]topicSpec, error) {
	var out []topicSpec
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, count, hasCount := strings.Cut(item, ":")
		t := topicSpec{name: name, partitions: def}
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("--topics: %q: the partition count must be a positive integer", item)
			}
			t.partitions = n
		}
		if name == "" {
			return nil, fmt.Errorf("--topics: %q: empty topic name", item)
		}
		out = append(out, t)
	}
	return out, nil
}

// newLogger logs with tint on a terminal, else as slog text.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
