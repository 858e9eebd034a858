package upstash

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The instance keep-alive (keepalive.go). kafka-rest closes a consumer
// instance that no request named for its --instance-expiry, and an rpc
// server whose workers all run long handlers sends none: its poll loop
// waits for a free worker. Its partitions then went to the other members
// of the group, which ran the requests it was still running a second time,
// whatever its rpc.WithMaxPollInterval.

// keepAliveSpy is an HTTP client for a Transport that counts the
// keep-alives (GET /committed/...) it sends and the 404s they get, and,
// with hang set, holds them until their context ends, as a server that
// does not answer.
type keepAliveSpy struct {
	sent, fenced atomic.Int64
	hang         atomic.Bool
	hung         chan struct{} // gets a value when a keep-alive hangs
	base         *http.Transport
}

func newKeepAliveSpy(t *testing.T) (*keepAliveSpy, *http.Client) {
	s := &keepAliveSpy{hung: make(chan struct{}, 1), base: &http.Transport{}}
	// Registered before the Transport's Close, so run after it.
	t.Cleanup(s.base.CloseIdleConnections)
	return s, &http.Client{Transport: s}
}

func (s *keepAliveSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/committed/") {
		return s.base.RoundTrip(r)
	}
	s.sent.Add(1)
	if s.hang.Load() {
		select {
		case s.hung <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	resp, err := s.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusNotFound {
		s.fenced.Add(1)
	}
	return resp, err
}

// keepAlives counts the keep-alive goroutines running in the process (one
// just started may not be counted yet).
func keepAlives() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "upstash.(*consumer).keepAlive(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// The mission's case: two rpc servers of one group with one worker each,
// all requests on the first one's partition; three requests fill its
// worker and its queue, so its poll loop waits for about three times the
// REST server's instance expiry. Each call gets its reply, and each
// handler runs once. Without the keep-alive (WithInstanceKeepAlive(0), or
// before it existed) the busy server's instance expired after 0.4 s, the
// second server got the partition and ran all three requests again while
// the first was still running them: 6 runs, 3 requests run twice.
func TestKeepAliveBusyRPCServerKeepsItsInstance(t *testing.T) {
	const expiry = 400 * time.Millisecond
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithPartitions(1)},
		server: []restserver.Option{restserver.WithInstanceExpiry(expiry)},
	})
	var runs handlerRuns
	for _, name := range []string{"a", "b"} { // "a" owns the partition (range assignment by instance)
		srv, err := rpc.NewServer(newTestTransport(t, s.URL, WithInstanceKeepAlive(expiry/4)),
			rpc.WithName("busy-srv"), rpc.WithInstance(name), rpc.WithConcurrency(1),
			rpc.WithMaxPollInterval(time.Minute), rpc.WithLogger(discard))
		require.NoError(t, err)
		rpc.Handle(srv, "echo", func(ctx context.Context, r echoReq) (echoReq, error) {
			runs.ran(ctx)
			work := time.NewTimer(3 * expiry) // a long report
			defer work.Stop()
			select {
			case <-work.C:
				return r, nil
			case <-ctx.Done():
				return r, ctx.Err()
			}
		})
		rpctest.Serve(t, srv)
	}
	require.Eventually(t, func() bool {
		for _, g := range s.Broker.Groups() {
			if g.Name == "busy-srv" {
				return len(g.Members) == 2
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "both servers joined")

	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("busy-cli"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()
	failed := callEcho(t, cli, 3, 1, 20*time.Second, "busy", nil)
	total, twice := runs.counts()
	assert.Zero(t, failed)
	assert.EqualValues(t, 3, total, "handler runs")
	assert.Zero(t, twice, "requests run twice")
}

// The bound: an owner that stops polling keeps its instance past the
// server's expiry only until its max poll interval has passed; then the
// keep-alives stop, the instance expires, and a Commit of what it polled
// fails with transport.ErrNotAssigned. Its next Poll joins again, and the
// keep-alives resume.
func TestKeepAliveStopsAfterTheMaxPollInterval(t *testing.T) {
	const (
		expiry  = 500 * time.Millisecond
		every   = 50 * time.Millisecond
		maxPoll = 1500 * time.Millisecond
	)
	s := startServer(t, serverConfig{server: []restserver.Option{restserver.WithInstanceExpiry(expiry)}})
	spy, hc := newKeepAliveSpy(t)
	tr := newTestTransport(t, s.URL, WithInstanceKeepAlive(every), WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := tr.Produce(ctx, transport.Message{Topic: "jobs", Value: []byte("report")})
	require.NoError(t, err)
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"},
		Start: transport.StartEarliest, MaxPollInterval: maxPoll})
	require.NoError(t, err)
	defer c.Close()
	msgs := pollN(t, c, 1)
	polled := time.Now()

	// Busy with msgs: no Poll from here. The keep-alives hold the
	// instance past its expiry...
	require.Never(t, func() bool { return s.REST.Stats().Instances == 0 }, 3*expiry, 10*time.Millisecond,
		"the instance expired under a busy owner")
	assert.Positive(t, spy.sent.Load())
	// ...until the max poll interval has passed: then they stop, and the
	// instance expires.
	require.Eventually(t, func() bool { return s.REST.Stats().Instances == 0 }, maxPoll+expiry+5*time.Second, 10*time.Millisecond,
		"the keep-alives held the instance of an owner that stopped polling")
	assert.GreaterOrEqual(t, time.Since(polled), maxPoll, "the instance expired before the max poll interval")
	sent := spy.sent.Load()
	require.Never(t, func() bool { return spy.sent.Load() != sent }, 5*every, 5*time.Millisecond, "keep-alives after the max poll interval")
	require.ErrorIs(t, c.Commit(ctx, msgs...), transport.ErrNotAssigned)

	// A Poll joins again (the records come again: nothing was committed),
	// and the keep-alives resume.
	again := pollN(t, c, 1)
	require.Equal(t, msgs[0].Offset, again[0].Offset)
	require.Eventually(t, func() bool { return spy.sent.Load() > sent }, 5*time.Second, 5*time.Millisecond, "keep-alives after a new poll")
	require.NoError(t, c.Commit(ctx, again...))
}

// A consumer whose owner polls more often than the keep-alive interval
// sends no keep-alive.
func TestKeepAliveNoneWhilePolling(t *testing.T) {
	const every = 100 * time.Millisecond
	s := startServer(t, serverConfig{})
	spy, hc := newKeepAliveSpy(t)
	tr := newTestTransport(t, s.URL, WithInstanceKeepAlive(every), WithPollWindow(10*time.Millisecond), WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"}})
	require.NoError(t, err)
	defer c.Close()
	for start := time.Now(); time.Since(start) < 6*every; {
		_, err := c.Poll(ctx)
		require.NoError(t, err)
	}
	assert.Zero(t, spy.sent.Load(), "keep-alives of a polling consumer")
	assert.Equal(t, 1, keepAlives())
}

// Close ends the keep-alive at once, even with a keep-alive in flight that
// the server does not answer (the request timeout is 30 s); its goroutine
// is gone when Close returns.
func TestKeepAliveEndsWithClose(t *testing.T) {
	s := startServer(t, serverConfig{})
	spy, hc := newKeepAliveSpy(t)
	tr := newTestTransport(t, s.URL, WithInstanceKeepAlive(10*time.Millisecond), WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sub := transport.Subscription{Group: "g", Topics: []string{"jobs"}}

	c, err := tr.Subscribe(ctx, sub)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return spy.sent.Load() >= 2 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 1, keepAlives())
	require.NoError(t, c.Close())
	assert.Zero(t, keepAlives(), "keep-alive goroutines after Close")
	sent := spy.sent.Load()
	require.Never(t, func() bool { return spy.sent.Load() != sent }, 100*time.Millisecond, 5*time.Millisecond, "keep-alives after Close")

	spy.hang.Store(true)
	c, err = tr.Subscribe(ctx, sub)
	require.NoError(t, err)
	select {
	case <-spy.hung:
	case <-ctx.Done():
		t.Fatal("no keep-alive was sent")
	}
	start := time.Now()
	require.NoError(t, c.Close())
	assert.Less(t, time.Since(start), 2*time.Second, "Close waited for a hung keep-alive")
	assert.Zero(t, keepAlives(), "keep-alive goroutines after Close")

	// Transport.Close ends them too.
	spy.hang.Store(false)
	_, err = tr.Subscribe(ctx, sub)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return keepAlives() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, tr.Close())
	assert.Zero(t, keepAlives(), "keep-alive goroutines after Transport.Close")
}

// A consumer replaced by a later Subscribe with its instance id (another
// process: another Transport) is told so by its next keep-alive, a 404
// that says transport.ErrFenced, and sends no more.
func TestKeepAliveStopsWhenFenced(t *testing.T) {
	const every = 10 * time.Millisecond
	s := startServer(t, serverConfig{})
	spy, hc := newKeepAliveSpy(t)
	old := newTestTransport(t, s.URL, WithInstanceKeepAlive(every), WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sub := transport.Subscription{Group: "g", Instance: "worker-1", Topics: []string{"jobs"}}
	c, err := old.Subscribe(ctx, sub)
	require.NoError(t, err)
	defer c.Close()
	require.Eventually(t, func() bool { return spy.sent.Load() >= 2 }, 5*time.Second, time.Millisecond)

	successor, err := newTestTransport(t, s.URL, WithInstanceKeepAlive(0)).Subscribe(ctx, sub)
	require.NoError(t, err)
	defer successor.Close()
	require.Eventually(t, func() bool { return keepAlives() == 0 }, 5*time.Second, time.Millisecond,
		"the replaced consumer's keep-alive still runs")
	require.EqualValues(t, 1, spy.fenced.Load())
	sent := spy.sent.Load()
	require.Never(t, func() bool { return spy.sent.Load() != sent }, 20*every, every/2, "keep-alives of a replaced consumer")
	_, err = c.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrFenced)
}

// WithInstanceKeepAlive refuses a negative interval and one under 1ms, and
// 0 turns keep-alives off (here after an earlier option turned them on):
// the instance of a consumer that does not poll expires.
func TestKeepAliveOption(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, -1, 1, time.Microsecond} {
		_, err := New(WithURL("http://127.0.0.1:1"), WithInstanceKeepAlive(d))
		require.ErrorIs(t, err, ErrConfig, "%v", d)
	}
	s := startServer(t, serverConfig{server: []restserver.Option{restserver.WithInstanceExpiry(300 * time.Millisecond)}})
	spy, hc := newKeepAliveSpy(t)
	tr := newTestTransport(t, s.URL, WithHTTPClient(hc), WithInstanceKeepAlive(10*time.Millisecond), WithInstanceKeepAlive(0))
	c, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"jobs"}})
	require.NoError(t, err)
	defer c.Close()
	require.Eventually(t, func() bool { return s.REST.Stats().Instances == 0 }, 5*time.Second, 10*time.Millisecond,
		"the instance did not expire")
	assert.Zero(t, spy.sent.Load(), "keep-alives with WithInstanceKeepAlive(0)")
}
