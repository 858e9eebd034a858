package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lmittmann/tint"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// config is what the command line says.
type config struct {
	role    string // all, worker, web
	serve   bool
	addr    string
	dir     string
	from    string
	to      string
	timeout time.Duration
	verbose bool
	// maxStreams caps the web app's live event streams.
	maxStreams int
	// keep is how long reports are kept after they finished.
	keep time.Duration
	// instance is -instance: the consumer group member id of role worker
	// or web ("": KAFKA_INSTANCE, else a slot in dir; see identity.go).
	instance string
	// kafka is -kafka: Kafka brokers to run on directly.
	kafka string
}

// envDir names the reports folder when -dir is not given.
const envDir = "REPORTS_DIR"

// envKeep is -keep's default when set (a Go duration, as "72h").
const envKeep = "REPORTS_KEEP"

// defaultKeep is how long reports are kept when neither -keep nor
// REPORTS_KEEP says.
const defaultKeep = 7 * 24 * time.Hour

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("reports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: reports [flags]

With no -role, runs the whole scenario in one process over an embedded Kafka
REST server: asks for a report, prints its progress and "report ready: PATH".
-role worker / -role web run one side against the REST endpoint in
UPSTASH_KAFKA_REST_URL (with UPSTASH_KAFKA_REST_USERNAME/_PASSWORD).
With -kafka host:port (or KAFKA_BROKERS set) every role runs on that Kafka
cluster directly instead.

`)
		fs.PrintDefaults()
	}
	now := time.Now().UTC()
	defDir := os.Getenv(envDir)
	if defDir == "" {
		defDir = filepath.Join(os.TempDir(), "kafkarpc-reports")
	}
	fs.StringVar(&cfg.role, "role", "all", "`role` to run: all (both servers and an embedded REST server), worker (server two) or web (server one)")
	fs.BoolVar(&cfg.serve, "serve", false, "keep the web app up and print its URL instead of making one report and exiting (role all; role web always serves)")
	fs.StringVar(&cfg.addr, "addr", "", "web app listen `address` (default 127.0.0.1:8081 when serving, a free loopback port otherwise; the REST server of the README takes 8080)")
	fs.StringVar(&cfg.dir, "dir", defDir, "reports `folder`: the .xlsx files, the worker's sales.db and the web app's web.db (env "+envDir+")")
	fs.StringVar(&cfg.from, "from", now.AddDate(0, -1, 0).Format(time.DateOnly), "first `day` of the report made by role all")
	fs.StringVar(&cfg.to, "to", now.Format(time.DateOnly), "last `day` of the report made by role all")
	fs.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "how long role all waits for its report")
	defKeep := defaultKeep
	if v := os.Getenv(envKeep); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return cfg, fmt.Errorf("%s=%q: want a duration such as 72h", envKeep, v)
		}
		defKeep = d
	}
	fs.DurationVar(&cfg.keep, "keep", defKeep, "web app: delete reports (the .xlsx and the records) this `long` after they finished; 0 keeps them forever (env "+envKeep+")")
	fs.IntVar(&cfg.maxStreams, "max-streams", defaultMaxStreams, "most live event `streams` the web app serves at once; one more gets 503")
	fs.StringVar(&cfg.instance, "instance", "", "roles worker and web: stable consumer group member `id`, so a restarted process takes its partitions back at once (default: "+envInstance+", else <role>-<n>.<folder hash>@<host> for the lowest slot n free in -dir; two live processes must not share one)")
	fs.StringVar(&cfg.kafka, "kafka", "", "run on Kafka directly: seed broker `host:port`[,host:port...] (plaintext; KAFKA_BROKERS with KAFKA_SASL_*/KAFKA_TLS_* for the rest)")
	fs.BoolVar(&cfg.verbose, "v", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch cfg.role {
	case "all", "worker", "web":
	default:
		return cfg, fmt.Errorf("-role %q: want all, worker or web", cfg.role)
	}
	if cfg.addr == "" {
		cfg.addr = "127.0.0.1:0"
		if cfg.serve || cfg.role == "web" {
			cfg.addr = "127.0.0.1:8081"
		}
	}
	return cfg, nil
}

// run is the whole program: main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.verbose)
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	switch cfg.role {
	case "worker", "web":
		id, err := claimIdentity(cfg.dir, cfg.role, cfg.instance)
		if err != nil {
			return err
		}
		defer id.release()
		log.Info("instance id", "role", cfg.role, "instance", id.id, "from", id.source)
		var t transport.Transport
		if cfg.onKafka() {
			t, err = kafkaTransport(cfg, log)
		} else {
			t, err = transportFromEnv(cfg.role, log)
		}
		if err != nil {
			return err
		}
		defer t.Close()
		if cfg.role == "worker" {
			return runWorker(ctx, t, cfg, log, rpc.WithInstance(id.id))
		}
		cfg.instance = id.id
		return serveWeb(ctx, t, cfg, log, stdout)
	}
	if cfg.onKafka() {
		return runAllOnKafka(ctx, cfg, log, stdout)
	}
	return runAll(ctx, cfg, log, stdout)
}

// serveWeb runs the web app on t until ctx ends.
func serveWeb(ctx context.Context, t transport.Transport, cfg config, log *slog.Logger, stdout io.Writer) error {
	web, err := startWeb(ctx, t, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "web app: %s\n", web.url)
	<-ctx.Done()
	return web.stop()
}

// newLogger logs in colour (tint) when w is a terminal, as text otherwise.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// transportFromEnv is the REST transport of roles worker and web.
func transportFromEnv(role string, log *slog.Logger) (*upstash.Transport, error) {
	t, err := upstash.FromEnv(upstash.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("-role %s: %w (and %s/%s when the server asks for credentials)", role, err, upstash.EnvUsername, upstash.EnvPassword)
	}
	log.Info("Kafka REST endpoint", "url", redactURL(os.Getenv(upstash.EnvURL), os.Getenv(upstash.EnvLegacyURL)))
	return t, nil
}

// redactURL returns the first non-empty raw URL without its user info, which
// may hold credentials.
func redactURL(raws ...string) string {
	for _, raw := range raws {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "(unparsable URL)"
		}
		u.User = nil
		return u.String()
	}
	return ""
}

// runWorker runs server two on t until ctx ends.
func runWorker(ctx context.Context, t transport.Transport, cfg config, log *slog.Logger, opts ...rpc.ServerOption) error {
	w, err := newWorker(ctx, filepath.Join(cfg.dir, "sales.db"), cfg.dir, log)
	if err != nil {
		return err
	}
	defer w.Close()
	s, err := newReportsServer(t, w, opts...)
	if err != nil {
		return err
	}
	log.Info("reports worker serving", "topic", reportsTopic, "dir", w.dir)
	return s.Serve(ctx)
}

// web is the web app's part of the configuration.
func (cfg config) web() webConfig {
	return webConfig{DBPath: filepath.Join(cfg.dir, "web.db"), Dir: cfg.dir, MaxStreams: cfg.maxStreams, KeepFor: cfg.keep, Instance: cfg.instance}
}

// runningWeb is server one serving HTTP.
type runningWeb struct {
	app  *webApp
	url  string
	srv  *http.Server
	done chan error
}

// startWeb opens the web app on t and serves it on cfg.addr.
func startWeb(ctx context.Context, t transport.Transport, cfg config, log *slog.Logger) (*runningWeb, error) {
	app, err := newWebApp(ctx, t, cfg.web(), log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		app.Close()
		return nil, err
	}
	srv := newHTTPServer(app, log)
	w := &runningWeb{app: app, url: "http://" + ln.Addr().String() + "/", srv: srv, done: make(chan error, 1)}
	go func() { w.done <- srv.Serve(ln) }()
	log.Info("web app serving", "url", w.url)
	return w, nil
}

// stop ends the live streams, waits for the requests in flight (up to 5 s),
// then closes the app.
func (w *runningWeb) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := w.srv.Shutdown(ctx)
	if err != nil {
		w.srv.Close()
	}
	if serr := <-w.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, w.app.Close())
}

// runAll is the one-command scenario: an embedded REST server, the worker
// and the web app each on its own REST client, then one report (or, with
// -serve, the web app until ctx ends).
func runAll(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	broker, err := memory.New(memory.WithTopic(reportsTopic, 3))
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	user, pass := "reports", randomSecret()
	rest, err := restserver.New(restserver.NewMemoryBackend(broker), restserver.WithCredentials(user, pass), restserver.WithLogger(log))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rest.Close()
		return err
	}
	restDone := make(chan error, 1)
	go func() { restDone <- rest.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rest.Shutdown(sctx); err != nil {
			log.Warn("embedded REST server shutdown", "err", err)
		}
		<-restDone
	}()
	endpoint := "http://" + ln.Addr().String()
	log.Info("embedded Kafka REST server", "url", endpoint)

	newClient := func() (*upstash.Transport, error) {
		return upstash.New(upstash.WithURL(endpoint), upstash.WithCredentials(user, pass), upstash.WithLogger(log))
	}
	workerT, err := newClient()
	if err != nil {
		return err
	}
	defer workerT.Close()
	webT, err := newClient()
	if err != nil {
		return err
	}
	defer webT.Close()
	return runPair(ctx, cfg, log, stdout, workerT, webT)
}

// runPair runs the worker on workerT and the web app on webT; then it makes
// one report through the web app's HTTP API, or with cfg.serve serves until
// ctx ends.
func runPair(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer, workerT, webT transport.Transport) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() {
		err := runWorker(workerCtx, workerT, cfg, log)
		if err != nil {
			cancel(fmt.Errorf("worker: %w", err))
		}
		workerDone <- err
	}()
	defer func() { stopWorker(); <-workerDone }()

	web, err := startWeb(ctx, webT, cfg, log)
	if err != nil {
		return err
	}
	defer web.stop() //nolint:errcheck // logged by the parts; the run's result is what matters

	if cfg.serve {
		fmt.Fprintf(stdout, "web app: %s\n", web.url)
		<-ctx.Done()
		if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	rctx, rcancel := context.WithTimeout(ctx, cfg.timeout)
	defer rcancel()
	_, err = requestReport(rctx, web.url, cfg.dir, ReportRequest{From: cfg.from, To: cfg.to}, stdout)
	if err != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
			return cause // the worker failed
		}
	}
	return err
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// requestReport asks the web app at base for a report the way a browser
// does (POST /reports, then its event stream), prints each progress notice
// and, when done, "report ready: PATH". The web app names the file only;
// PATH is that name in dir, the reports folder.
func requestReport(ctx context.Context, base, dir string, req ReportRequest, out io.Writer) (*ReportReady, error) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	base = strings.TrimSuffix(base, "/")

	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/reports", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	var started struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	err = json.NewDecoder(res.Body).Decode(&started)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("POST /reports: %s %s", res.Status, started.Error)
	}
	fmt.Fprintf(out, "report %s requested: %s .. %s\n", started.ID, req.From, req.To)

	hreq, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/reports/"+started.ID+"/events", nil)
	if err != nil {
		return nil, err
	}
	res, err = hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET events: %s", res.Status)
	}
	var ready *ReportReady
	var failure error
	err = readSSE(res.Body, func(ev sseEvent) bool {
		var st Status
		if err := json.Unmarshal([]byte(ev.Data), &st); err != nil {
			failure = fmt.Errorf("event %s: %w", ev.Event, err)
			return false
		}
		switch st.State {
		case stateProgress:
			var p ReportProgress
			_ = json.Unmarshal(st.Notice, &p)
			fmt.Fprintf(out, "progress: %s\n", p.Message)
		case stateDone:
			ready = new(ReportReady)
			if err := json.Unmarshal(st.Notice, ready); err != nil {
				failure = fmt.Errorf("completion notice: %w", err)
				return false
			}
			fmt.Fprintf(out, "done: %d rows, total %.2f, took %s\n", ready.Rows, ready.Total, ready.Took)
			fmt.Fprintf(out, "report ready: %s\n", filepath.Join(dir, ready.Path))
			return false
		case stateFailed:
			failure = fmt.Errorf("report %s failed: %s: %s", st.ID, st.Error.Code, st.Error.Message)
			return false
		}
		return true
	})
	switch {
	case failure != nil:
		return nil, failure
	case ready != nil:
		return ready, nil
	case err != nil:
		return nil, fmt.Errorf("event stream: %w", err)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("waiting for report %s: %w", started.ID, ctx.Err())
	}
	return nil, fmt.Errorf("event stream of report %s ended before the report was done", started.ID)
}
