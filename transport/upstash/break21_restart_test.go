package upstash

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// restartable is a REST server over one embedded broker that can be
// restarted behind a fixed URL, as kafka-rest restarted in place: the
// new server knows no consumer instance.
type restartable struct {
	t      *testing.T
	broker *memory.Broker
	opts   []restserver.Option
	cur    atomic.Pointer[restserver.Server]
	http   *httptest.Server
}

func startRestartable(t *testing.T, opts ...restserver.Option) *restartable {
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	r := &restartable{t: t, broker: b, opts: append([]restserver.Option{restserver.WithLogger(slog.New(slog.DiscardHandler))}, opts...)}
	r.restart()
	r.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.cur.Load().ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		require.NoError(r.t, r.cur.Load().Close())
		r.http.Close()
	})
	return r
}

// restart closes the current server (its instances leave their groups)
// and puts a new one in its place.
func (r *restartable) restart() {
	rs, err := restserver.New(restserver.NewMemoryBackend(r.broker), r.opts...)
	require.NoError(r.t, err)
	if old := r.cur.Swap(rs); old != nil {
		require.NoError(r.t, old.Close())
	}
}

// groupSpy counts the keep-alives whose path starts with prefix, and
// those refused with 400.
type groupSpy struct {
	base          *http.Transport
	prefix        string
	sent, refused atomic.Int64
}

func (s *groupSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, s.prefix) {
		return s.base.RoundTrip(r)
	}
	s.sent.Add(1)
	resp, err := s.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusBadRequest {
		s.refused.Add(1)
	}
	return resp, err
}

// kafka-rest restarted under a busy owner: its instance is gone. The
// keep-alive is refused (400) and pauses (no request per interval to a
// server that has no instance to keep), the owner's Commit says
// transport.ErrNotAssigned, and its next Poll makes the instance again,
// gets the uncommitted record again, and the keep-alives resume.
func TestBreak21KeepAliveAcrossServerRestart(t *testing.T) {
	const every = 20 * time.Millisecond
	r := startRestartable(t, restserver.WithInstanceExpiry(time.Minute))
	spy, hc := newKeepAliveSpy(t)
	tr := newTestTransport(t, r.http.URL, WithInstanceKeepAlive(every), WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := tr.Produce(ctx, transport.Message{Topic: "jobs", Value: []byte("report")})
	require.NoError(t, err)
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer c.Close()
	msgs := pollN(t, c, 1)
	require.Eventually(t, func() bool { return spy.sent.Load() >= 2 }, 5*time.Second, time.Millisecond)

	r.restart()
	// Refused once (or a few times, for pings that met the old server
	// closing), then none.
	require.Eventually(t, func() bool { return r.cur.Load().Stats().Errors > 0 }, 5*time.Second, time.Millisecond,
		"no keep-alive was refused by the new server")
	sent := spy.sent.Load()
	require.Never(t, func() bool { return spy.sent.Load() > sent+1 }, 10*every, every/2,
		"keep-alives went on to a server without the instance")
	assert.Zero(t, r.cur.Load().Stats().Instances, "a keep-alive made an instance")

	require.ErrorIs(t, c.Commit(ctx, msgs...), transport.ErrNotAssigned)
	again := pollN(t, c, 1)
	require.Equal(t, msgs[0].Offset, again[0].Offset)
	require.NoError(t, c.Commit(ctx, again...))
	// A variable of its own: Never's last check may still be running, and
	// reads sent.
	resumedFrom := spy.sent.Load()
	require.Eventually(t, func() bool { return spy.sent.Load() >= resumedFrom+2 }, 5*time.Second, time.Millisecond,
		"keep-alives did not resume after the poll")
	assert.Equal(t, 1, r.cur.Load().Stats().Instances)
}

// The rpc level: kafka-rest restarts while the server's one worker runs a
// long handler and two more requests wait for it (its queue is full, so
// the server does not poll). The keep-alive is refused and pauses; the replies reach their
// callers; the server's next poll makes its instance again (the requests,
// not committed, may run once more: at-least-once), and it serves new
// calls.
func TestBreak21BusyRPCServerAcrossServerRestart(t *testing.T) {
	const every = 20 * time.Millisecond
	r := startRestartable(t, restserver.WithInstanceExpiry(time.Minute))
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	// The keep-alives of the request consumer (group restart-srv), not
	// those of the server's other readers on the Transport.
	spy := &groupSpy{base: &http.Transport{}, prefix: "/committed/restart-srv/"}
	t.Cleanup(spy.base.CloseIdleConnections)
	srv, err := rpc.NewServer(newTestTransport(t, r.http.URL, WithInstanceKeepAlive(every), WithHTTPClient(&http.Client{Transport: spy})),
		rpc.WithName("restart-srv"), rpc.WithConcurrency(1), rpc.WithLogger(discard))
	require.NoError(t, err)
	rpc.Handle(srv, "echo", func(ctx context.Context, q echoReq) (echoReq, error) {
		if q.Report == "long" {
			select {
			case <-release:
			case <-ctx.Done():
				return q, ctx.Err()
			}
		}
		return q, nil
	})
	rpctest.Serve(t, srv)
	cli, err := rpc.NewClient(newTestTransport(t, r.http.URL), rpc.WithName("restart-cli"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	long := make(chan error, 3)
	for id := range 3 {
		go func() {
			_, err := rpc.Call[echoReq](ctx, cli, "echo", echoReq{ID: id, Report: "long"})
			long <- err
		}()
	}
	// Busy: no consume in flight, so keep-alives go.
	sent := spy.sent.Load()
	require.Eventually(t, func() bool { return spy.sent.Load() >= sent+2 }, 10*time.Second, time.Millisecond,
		"the busy server sent no keep-alive")
	r.restart()
	require.Eventually(t, func() bool { return spy.refused.Load() > 0 }, 5*time.Second, time.Millisecond,
		"no keep-alive was refused by the new server")
	sent = spy.sent.Load()
	require.Never(t, func() bool { return spy.sent.Load() > sent+1 }, 10*every, every/2,
		"keep-alives went on to a server without the instance")
	releaseOnce.Do(func() { close(release) })
	for range 3 {
		require.NoError(t, <-long)
	}
	for i := range 5 {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := rpc.Call[echoReq](cctx, cli, "echo", echoReq{ID: 10 + i, Report: "short"})
		ccancel()
		require.NoError(t, err, "call %d after the restart", i)
		require.Equal(t, 10+i, out.ID)
	}
}
