package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// command is one subcommand: its flags, help and body.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	short   string // one line, for the command list
	summary string
	example string
	// flags registers the subcommand's own flags on fs; the returned
	// function runs it with the positional arguments.
	flags func(fs *flag.FlagSet, g *globals) func(ctx context.Context, e *env, args []string) error
}

// globals are the flags every subcommand takes.
type globals struct {
	url, username, password string
	name                    string
	json                    bool
	connectTimeout          time.Duration
	verbose                 bool
	kafka                   kafka.Flags // --brokers and --kafka-*: Kafka directly instead of REST
}

// env is what a running subcommand writes to and reads from.
type env struct {
	g      *globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// cliError is an error that carries its exit code.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// usageErr is a usage or input error: exit code 2.
func usageErr(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// replyErr marks err (an error reply, already printed) as exit code 1.
func replyErr(err error) error { return &cliError{code: exitReply, err: err} }

// silent is an error already reported on the output: only its exit code
// matters.
type silent struct{ code int }

func (s silent) Error() string { return fmt.Sprintf("exit %d", s.code) }

func (c *command) exec(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(exitProgName+" "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g := &globals{}
	fs.StringVar(&g.url, "url", "", "REST endpoint (default $UPSTASH_KAFKA_REST_URL, else $KAFKA_URL)")
	fs.StringVar(&g.username, "username", "", "HTTP Basic username (default $UPSTASH_KAFKA_REST_USERNAME; prefer the variable)")
	fs.StringVar(&g.password, "password", "", "HTTP Basic password (default $UPSTASH_KAFKA_REST_PASSWORD; prefer the variable: flags show in the process list)")
	fs.StringVar(&g.name, "name", "kafkarpc-cli", "service name sent as rpc-from; the reply topic is NAME.replies")
	fs.BoolVar(&g.json, "json", false, "print one JSON object a line, for scripts")
	fs.DurationVar(&g.connectTimeout, "connect-timeout", 10*time.Second, "give up reaching the server (retries included) after this long")
	fs.BoolVar(&g.verbose, "verbose", false, "log the library's debug lines to stderr")
	g.kafka.Register(fs)
	// Register's text is kafka-rest's, which proxies --brokers and has an
	// embedded broker without it; the CLI talks to the REST API without it.
	fs.Lookup("brokers").Usage = "talk to Kafka at `host:port,...` directly instead of the REST API (default $" + kafka.EnvBrokers + " when no REST URL is given by --url or its variables)"
	body := c.flags(fs, g)

	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.help(stdout, fs)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v (see --help)\n", exitProgName, c.name, err)
		return exitUsage
	}
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	e := &env{g: g, stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	err = body(ctx, e, pos)
	return exitCode(stderr, c.name, err)
}

// exitCode prints err as one line (unless already reported) and returns
// the exit code it stands for.
func exitCode(stderr io.Writer, name string, err error) int {
	if err == nil {
		return exitOK
	}
	var s silent
	if errors.As(err, &s) {
		return s.code
	}
	code := exitUsage
	var ce *cliError
	if errors.As(err, &ce) {
		code = ce.code
	}
	fmt.Fprintf(stderr, "%s %s: %s\n", exitProgName, name, oneLine(describe(err)))
	return code
}

// describe adds a hint to the errors a user can fix.
func describe(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, transport.ErrUnauthenticated):
		return msg + " (check --username/--password or UPSTASH_KAFKA_REST_USERNAME/UPSTASH_KAFKA_REST_PASSWORD; on Kafka, --kafka-sasl-* or KAFKA_SASL_*)"
	case errors.Is(err, transport.ErrPermissionDenied):
		return msg + " (these credentials may not use this topic)"
	case isUnknownRoute(err):
		return msg + " (check the path of --url: the REST API is served at the server's root)"
	case errors.Is(err, transport.ErrUnknownTopic):
		return msg + " (the topic does not exist on the server)"
	case isUnreachable(err):
		return msg + " (is the server at --url, or are the --brokers, running?)"
	}
	return msg
}

// isUnknownRoute reports a 404 for a path the REST server does not serve:
// a wrong path in the URL.
func isUnknownRoute(err error) bool {
	var he *upstash.Error
	return errors.As(err, &he) && he.Status == http.StatusNotFound && strings.HasPrefix(strings.ToLower(he.Message), "unknown route")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func isUnreachable(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return errors.Is(err, transport.ErrUnavailable) || errors.As(err, &ue) || errors.As(err, &oe)
}

// isTransportErr reports whether err came from the transport (refused,
// unreachable, misconfigured: exit 2) rather than from the service (an
// error reply, or no reply in time: exit 1).
func isTransportErr(err error) bool {
	var ue *upstash.Error
	for _, s := range []error{transport.ErrUnknownTopic, transport.ErrUnauthenticated, transport.ErrPermissionDenied,
		transport.ErrInvalid, transport.ErrClosed, transport.ErrMessageTooLarge, rpc.ErrClosed, upstash.ErrConfig} {
		if errors.Is(err, s) {
			return true
		}
	}
	return errors.As(err, &ue) || isUnreachable(err)
}

func (c *command) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s %s [flags] %s\n\n%s\n\nExample:\n%s\n\nFlags:\n", exitProgName, c.name, c.args, c.summary, c.example)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseInterleaved parses fs from args, letting flags follow positional
// arguments (which the flag package stops at); "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// openTransport is the one place the transport is chosen: the REST API,
// from --url/--username/--password over the UPSTASH_KAFKA_REST_* variables.
func openTransport(g *globals) (transport.Transport, error) {
	if useKafka(g) {
		cfg, err := g.kafka.Config()
		if err != nil {
			return nil, &cliError{code: exitUsage, err: err}
		}
		t, err := kafka.New(kafka.WithConfig(cfg), kafka.SetupTimeout(g.connectTimeout))
		if err != nil {
			return nil, transportErr(err)
		}
		return t, nil
	}
	opts := []upstash.Option{
		upstash.WithSetupTimeout(g.connectTimeout),
		upstash.WithBackoff(upstash.Backoff{MaxElapsed: g.connectTimeout}),
	}
	if g.url != "" {
		opts = append(opts, upstash.WithURL(g.url))
	}
	if g.username != "" || g.password != "" {
		// Each flag falls back to its own variable, as --help says: one
		// flag given does not drop the other half of the pair.
		user, pass := envCredentials()
		opts = append(opts, upstash.WithCredentials(cmp.Or(g.username, user), cmp.Or(g.password, pass)))
	}
	if g.url == "" && os.Getenv(upstash.EnvURL) == "" && os.Getenv(upstash.EnvLegacyURL) == "" {
		// The library's "use WithURL" names its Go option, not a flag.
		return nil, usageErr("no server named: give --url or set %s (or --brokers or %s for Kafka)", upstash.EnvURL, kafka.EnvBrokers)
	}
	t, err := upstash.FromEnv(opts...)
	if err != nil {
		return nil, &cliError{code: exitUsage, err: err}
	}
	return t, nil
}

// envCredentials are the credentials of the environment, as upstash.FromEnv
// reads them: the UPSTASH_ pair, else (neither set) the article's KAFKA_ pair.
func envCredentials() (user, pass string) {
	user, pass = os.Getenv(upstash.EnvUsername), os.Getenv(upstash.EnvPassword)
	if user == "" && pass == "" {
		user, pass = os.Getenv(upstash.EnvLegacyUsername), os.Getenv(upstash.EnvLegacyPassword)
	}
	return user, pass
}

// newClient opens the transport and an rpc client on it. The caller closes
// both with the returned function.
func newClient(e *env, opts ...rpc.ClientOption) (*rpc.Client, transport.Transport, func(), error) {
	t, err := openTransport(e.g)
	if err != nil {
		return nil, nil, nil, err
	}
	opts = append([]rpc.ClientOption{rpc.WithName(e.g.name), rpc.WithLogger(e.log)}, opts...)
	c, err := rpc.NewClient(t, opts...)
	if err != nil {
		t.Close()
		return nil, nil, nil, transportErr(err)
	}
	return c, t, func() { c.Close(); t.Close() }, nil
}

// transportErr marks err as a transport error: exit code 2.
func transportErr(err error) error { return &cliError{code: exitUsage, err: err} }

// headerFlag collects repeated --header k=v flags.
type headerFlag []transport.Header

func (h *headerFlag) String() string { return "" }
func (h *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("header %q: want key=value", s)
	}
	if strings.HasPrefix(k, "rpc-") {
		return fmt.Errorf("header %q: rpc-* headers are reserved for the envelope", k)
	}
	*h = append(*h, transport.Header{Key: k, Value: v})
	return nil
}

// useKafka reports whether the command talks to Kafka directly: --brokers
// (or another --kafka-* flag) was given, or no REST endpoint is named
// (--url, UPSTASH_KAFKA_REST_URL, KAFKA_URL) while KAFKA_BROKERS is set.
func useKafka(g *globals) bool {
	if g.kafka.Wanted() {
		return true
	}
	if g.url != "" || os.Getenv(upstash.EnvURL) != "" || os.Getenv(upstash.EnvLegacyURL) != "" {
		return false
	}
	return os.Getenv(kafka.EnvBrokers) != ""
}
