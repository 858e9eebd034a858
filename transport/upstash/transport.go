package upstash

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Transport is a client of one Upstash Kafka REST endpoint. It implements
// transport.Transport and transport.Tailer.
//
// A Transport is safe for concurrent use; it holds one HTTP client whose
// keep-alive connections are shared by every producer and consumer. The zero
// value is not usable: create one with [New] or [FromEnv]. After Close,
// every method returns an error wrapping transport.ErrClosed.
type Transport struct {
	cfg       config
	client    *http.Client
	ownClient bool
	log       *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // flusher goroutine

	mu        sync.Mutex
	closed    bool
	members   map[memberKey]*consumer
	tails     map[*tailer]struct{}
	closeOnce sync.Once
	closeErr  error

	producer producer

	// Fixed parts of every request, made once: the base URL as a string
	// and the Authorization header's value (nil without credentials).
	baseURL   string
	authValue []string
	// The URLs of the requests a call makes, made once.
	produceURL, fetchURL string

	dropped atomic.Int64 // records dropped as not asked for

	// failing is set while the server fails requests that are retried
	// (from the first retry, logged, to the next answer of the route that
	// failed, or of any once none failed for a while): see noteFailing.
	// outageMu guards the changes of failing, outageRoute and lastFailed.
	failing     atomic.Bool
	outageMu    sync.Mutex
	outageRoute string    // method and path of the request whose retry began the outage
	lastFailed  time.Time // of the latest failed attempt worth a retry, of any route

	// fetchCarry is what the server said of records carried by a fetch
	// (tail_carry.go): fetchCarryUnknown, fetchCarryYes, fetchCarryNo.
	fetchCarry atomic.Int32
}

// Stats are counts of what a Transport refused from its server.
type Stats struct {
	// DroppedRecords counts records a consumer (Subscribe or Tail) dropped
	// because they were not ones it asked for: a topic it does not read, a
	// partition out of range (negative, at or over [WithMaxPartitions], or
	// beyond a tailed topic's count), a negative offset, an offset below the
	// position a Tail asked for, or the largest int64 offset (after which
	// no position exists).
	DroppedRecords int64
}

// Stats returns the transport's counts so far. It is safe for concurrent
// use, also after Close.
func (t *Transport) Stats() Stats {
	return Stats{DroppedRecords: t.dropped.Load()}
}

var (
	_ transport.Transport    = (*Transport)(nil)
	_ transport.Tailer       = (*Transport)(nil)
	_ transport.TopicChecker = (*Transport)(nil)
)

type memberKey struct{ group, instance string }

// New returns a Transport for the REST endpoint given by [WithURL]. It makes
// no request: a wrong URL or credentials show on the first call. A bad
// configuration (no URL, unparsable URL, negative limits...) is an error
// wrapping [ErrConfig].
func New(opts ...Option) (*Transport, error) {
	cfg := defaults()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:     cfg,
		client:  cfg.httpClient,
		log:     cfg.logger.With(slog.String("transport", "upstash"), slog.String("url", cfg.base.Redacted())),
		members: make(map[memberKey]*consumer),
		tails:   make(map[*tailer]struct{}),
	}
	if t.client == nil {
		t.client, t.ownClient = newHTTPClient(), true
	} else {
		t.client = withoutRedirects(t.client)
	}
	t.baseURL = cfg.base.String()
	t.produceURL, t.fetchURL = t.baseURL+"/produce", t.baseURL+"/fetch"
	if cfg.credsSet {
		t.authValue = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.user+":"+cfg.pass))}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.producer.init(t)
	return t, nil
}

// URL returns the REST endpoint in use, without credentials.
func (t *Transport) URL() string { return t.cfg.base.Redacted() }

// Close stops the transport: queued Produce calls fail with
// transport.ErrClosed, an in-flight produce request is given up to the close
// timeout to finish, every consumer instance created by Subscribe is deleted
// on the server (POST /delete-consumer, best effort, bounded by
// [WithCloseTimeout]) and every Tail consumer stops. It returns the errors of
// failed deletions, if any. Close is idempotent; later calls return the same result.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		members := make([]*consumer, 0, len(t.members))
		for _, c := range t.members {
			members = append(members, c)
		}
		tails := make([]*tailer, 0, len(t.tails))
		for tl := range t.tails {
			tails = append(tails, tl)
		}
		t.mu.Unlock()

		t.producer.close()

		var (
			wg   sync.WaitGroup
			emu  sync.Mutex
			errs []error
		)
		for _, c := range members {
			wg.Go(func() {
				if err := c.Close(); err != nil {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			})
		}
		for _, tl := range tails {
			_ = tl.Close()
		}
		wg.Wait()
		t.cancel()
		t.wg.Wait()
		if t.ownClient {
			t.client.CloseIdleConnections()
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func errClosed(what string) error {
	return fmt.Errorf("upstash: %s: %w", what, transport.ErrClosed)
}

// setup runs a Tail or Subscribe (op) under the setup timeout
// ([WithSetupTimeout]) as well as ctx; when the timeout is what ended it
// (or, retrying, op gave up as it would pass first), the error says so.
func setup[T any](ctx context.Context, t *Transport, op func(context.Context) (T, error)) (T, error) {
	sctx, cancel := context.WithTimeout(ctx, t.cfg.setupTimeout)
	defer cancel()
	v, err := op(sctx)
	if err != nil && ctx.Err() == nil && (sctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) && setupFirst(ctx, sctx)) {
		err = fmt.Errorf("%w (setup timeout %v passed: WithSetupTimeout)", err, t.cfg.setupTimeout)
	}
	return v, err
}

// setupFirst reports whether sctx, the setup timeout's context made from
// ctx, ends before ctx.
func setupFirst(ctx, sctx context.Context) bool {
	d, ok := ctx.Deadline()
	sd, _ := sctx.Deadline()
	return !ok || sd.Before(d)
}
