package upstash

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// cancelAtOp18 cancels a ctx at the k-th operation of an rpc Server's
// start (the dedup reader's Subscribe, its sentinel Produces and Polls, the
// group's Subscribe): before it, after it or while it runs. A k not reached
// when the group's Subscribe returns is a cancel just after the start.
type cancelAtOp18 struct {
	transport.Transport
	k      int64
	mode   int // 0 before, 1 after, 2 while
	cancel context.CancelFunc
	n      atomic.Int64
	joins  atomic.Int64 // group Subscribes begun
}

func (c *cancelAtOp18) op(f func()) {
	if c.n.Add(1)-1 != c.k {
		f()
		return
	}
	switch c.mode {
	case 0:
		c.cancel()
		f()
	case 1:
		f()
		c.cancel()
	default:
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		// Let the request reach the server before the cancel, at a
		// random point of it.
		if d := rand.Int64N(int64(3 * time.Millisecond)); d > 0 {
			select {
			case <-done:
			case <-time.After(time.Duration(d)):
			}
		}
		c.cancel()
		<-done
	}
}

func (c *cancelAtOp18) Produce(ctx context.Context, msgs ...transport.Message) (out []transport.Message, err error) {
	c.op(func() { out, err = c.Transport.Produce(ctx, msgs...) })
	return out, err
}

func (c *cancelAtOp18) Subscribe(ctx context.Context, sub transport.Subscription) (cons transport.Consumer, err error) {
	reader := strings.Contains(sub.Group, ".reader.")
	if !reader {
		c.joins.Add(1)
	}
	c.op(func() { cons, err = c.Transport.Subscribe(ctx, sub) })
	if !reader {
		if c.n.Load() <= c.k {
			c.n.Store(c.k + 1)
			c.cancel()
		}
		return cons, err
	}
	if err == nil {
		cons = &cancelAtOp18Consumer{Consumer: cons, c: c}
	}
	return cons, err
}

type cancelAtOp18Consumer struct {
	transport.Consumer
	c *cancelAtOp18
}

func (r *cancelAtOp18Consumer) Poll(ctx context.Context) (msgs []transport.Message, err error) {
	r.c.op(func() { msgs, err = r.Consumer.Poll(ctx) })
	return msgs, err
}

// An rpc Server on the REST transport whose Serve's ctx is canceled at
// each operation of its start in turn (before, after and while each runs):
// Serve returns nil at once every time, and the same Server then serves a
// call promptly: nothing the canceled start left on the REST server (a
// half-made consumer instance, a group member) fences or delays it.
func TestBreak18RESTServeCanceledAtEachStartOperation(t *testing.T) {
	for _, fixed := range []bool{true, false} {
		name := "fresh instance"
		if fixed {
			name = "fixed instance"
		}
		t.Run(name, func(t *testing.T) {
			s := startServer(t, serverConfig{})
			tr := &cancelAtOp18{Transport: newTestTransport(t, s.URL), k: -1}
			opts := []rpc.ServerOption{rpc.WithName("svc18"), rpc.WithLogger(discard)}
			if fixed {
				opts = append(opts, rpc.WithInstance("svc18-fixed"))
			}
			srv, err := rpc.NewServer(tr, opts...)
			require.NoError(t, err)
			rpc.Handle(srv, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
			cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("cli18"), rpc.WithLogger(discard))
			require.NoError(t, err)
			defer cli.Close()

			var slowest time.Duration
			for k := int64(0); k < 10; k++ {
				for mode := range 3 {
					ctx, cancel := context.WithCancel(context.Background())
					tr.k, tr.mode, tr.cancel = k, mode, cancel
					tr.n.Store(0)
					served := make(chan error, 1)
					go func() { served <- srv.Serve(ctx) }()
					select {
					case err := <-served:
						require.NoError(t, err, "op %d mode %d", k, mode)
					case <-time.After(20 * time.Second):
						cancel()
						t.Fatalf("op %d mode %d: Serve did not return after its ctx was canceled", k, mode)
					}
					cancel()
					tr.k = -1
					left := s.instances(t)

					ctx2, cancel2 := context.WithCancel(context.Background())
					served2 := make(chan error, 1)
					go func() { served2 <- srv.Serve(ctx2) }()
					callCtx, stop := context.WithTimeout(context.Background(), 20*time.Second)
					began := time.Now()
					got, err := rpc.Call[string](callCtx, cli, "echo", "after")
					took := time.Since(began)
					stop()
					cancel2()
					require.NoError(t, err, "op %d mode %d (instances left by the canceled start: %v)", k, mode, left)
					assert.Equal(t, "after", got)
					require.NoError(t, <-served2)
					if took > slowest {
						slowest = took
					}
					if took > 3*time.Second {
						t.Errorf("op %d mode %d: the call after a canceled start took %v; instances it left: %v", k, mode, took, left)
					}
				}
			}
			t.Logf("slowest call after a canceled start: %v; group joins: %d", slowest, tr.joins.Load())
		})
	}
}

// An rpc Server with a fresh instance id (the default) whose Serve's ctx
// is canceled while its group join is in flight on the REST server leaves
// nothing on the server: before, upstash Subscribe left the join's
// half-made consumer instance to the server's idle expiry (5 min) once its
// ctx ended; it stayed a member of the group, held the partitions, and the
// next Serve of the same Server answered no call for over 90 s.
func TestBreak18RESTCanceledJoinLeavesNoMember(t *testing.T) {
	s := startServer(t, serverConfig{})
	tr := &cancelAtOp18{Transport: newTestTransport(t, s.URL), k: -1}
	srv, err := rpc.NewServer(tr, rpc.WithName("svc18g"), rpc.WithDedupTopic(""), rpc.WithLogger(discard))
	require.NoError(t, err)
	rpc.Handle(srv, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("cli18g"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()

	for attempt := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		tr.k, tr.mode, tr.cancel = 0, 2, cancel // the group join is op 0 (no dedup topic)
		tr.n.Store(0)
		began := time.Now()
		require.NoError(t, srv.Serve(ctx))
		assert.Less(t, time.Since(began), 2*time.Second, "attempt %d: Serve held after its cancel", attempt)
		cancel()
		require.Empty(t, s.instances(t), "attempt %d: instances left by the canceled join", attempt)
	}
	tr.k = -1

	ctx2, cancel2 := context.WithCancel(context.Background())
	served2 := make(chan error, 1)
	go func() { served2 <- srv.Serve(ctx2) }()
	defer func() {
		cancel2()
		require.NoError(t, <-served2)
	}()
	callCtx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	began := time.Now()
	_, err = rpc.Call[string](callCtx, cli, "echo", "after")
	require.NoError(t, err)
	assert.Less(t, time.Since(began), 3*time.Second, "the call after the canceled joins")
}

// Serve's ctx canceled at random moments (0 to 40 ms after it began) on the
// REST transport, 100 times on one Server with fresh instance ids: Serve
// returns nil every time, nothing is left on the REST server after it,
// and the Server then answers a call promptly.
func TestBreak18RESTServeCanceledAtRandomMoments(t *testing.T) {
	s := startServer(t, serverConfig{})
	srv, err := rpc.NewServer(newTestTransport(t, s.URL), rpc.WithName("svc18r"), rpc.WithLogger(discard))
	require.NoError(t, err)
	rpc.Handle(srv, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx) }()
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(40 * time.Millisecond)))): // the random moment of the stop
		case err := <-served:
			cancel()
			t.Fatalf("iteration %d: Serve returned before its stop: %v", i, err)
		}
		cancel()
		select {
		case err := <-served:
			require.NoError(t, err, "iteration %d", i)
		case <-time.After(20 * time.Second):
			t.Fatalf("iteration %d: Serve did not return after its stop", i)
		}
		if left := s.instances(t); len(left) > 0 {
			deadline := time.Now().Add(3 * time.Second)
			for len(s.instances(t)) > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // polling the server, bounded by deadline
			}
			require.Empty(t, s.instances(t), "iteration %d: instances left (at Serve's return: %v)", i, left)
			t.Errorf("iteration %d: instances left at Serve's return, gone later: %v", i, left)
		}
	}
	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("cli18r"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()
	callCtx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	began := time.Now()
	_, err = rpc.Call[string](callCtx, cli, "echo", "after")
	require.NoError(t, err)
	assert.Less(t, time.Since(began), 3*time.Second)
}
