package upstash

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// newCancelAtOp18 wraps t to cancel a Server's start at one of its
// operations; a cancel while one runs comes at a random point of its
// request (up to 3 ms in), after it reached the server.
func newCancelAtOp18(t transport.Transport) *testutil.CancelAtOp {
	c := testutil.NewCancelAtOp(t)
	c.WhileDelay = 3 * time.Millisecond
	return c
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
			tr := newCancelAtOp18(newTestTransport(t, s.URL))
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
				for _, mode := range []testutil.CancelMode{testutil.CancelBefore, testutil.CancelAfter, testutil.CancelWhile} {
					ctx, cancel := context.WithCancel(context.Background())
					tr.Arm(k, mode, cancel)
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
					tr.Disarm()
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
			t.Logf("slowest call after a canceled start: %v; group joins: %d", slowest, tr.Joins.Load())
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
	tr := newCancelAtOp18(newTestTransport(t, s.URL))
	srv, err := rpc.NewServer(tr, rpc.WithName("svc18g"), rpc.WithDedupTopic(""), rpc.WithLogger(discard))
	require.NoError(t, err)
	rpc.Handle(srv, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("cli18g"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()

	for attempt := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		tr.Arm(0, testutil.CancelWhile, cancel) // the group join is op 0 (no dedup topic)
		began := time.Now()
		require.NoError(t, srv.Serve(ctx))
		assert.Less(t, time.Since(began), 2*time.Second, "attempt %d: Serve held after its cancel", attempt)
		cancel()
		require.Empty(t, s.instances(t), "attempt %d: instances left by the canceled join", attempt)
	}
	tr.Disarm()

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
