package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// stallSubscribe is a transport whose Subscribe, for the groups that match,
// reports that it was entered and then blocks until its ctx ends (as a join
// that waits for a slow broker does), or fails with fail when fail is set.
type stallSubscribe struct {
	transport.Transport
	match   func(group string) bool
	entered chan struct{}
	fail    error
	// late, when set, is what Subscribe returns once its ctx ended,
	// instead of ctx's error: a failure the stop came on top of.
	late error
}

func (s *stallSubscribe) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	if s.match == nil || !s.match(sub.Group) {
		return s.Transport.Subscribe(ctx, sub)
	}
	select {
	case s.entered <- struct{}{}:
	default:
	}
	if s.fail != nil {
		return nil, s.fail
	}
	<-ctx.Done()
	if s.late != nil {
		return nil, s.late
	}
	return nil, ctx.Err()
}

// stopWhileStalled runs s.Serve, cancels its ctx once Serve is inside
// tr's stalled Subscribe, and returns what Serve returned.
func stopWhileStalled(t *testing.T, s *rpc.Server, tr *stallSubscribe) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	select {
	case <-tr.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve never reached the stalled Subscribe")
	}
	cancel()
	select {
	case err := <-served:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its ctx was canceled")
	}
	return nil
}

// A stop asked for while Serve is still starting (joining the group,
// replaying the dedup topic) is a stop, not a failure: Serve returns nil,
// and the server serves again afterwards. Before, it returned "join group:
// context canceled", and a worker sent SIGTERM just after it started exited
// with status 1 (deploy's TestSupervisorSetupRuns, under -cpu 4).
func TestServeCanceledWhileStartingReturnsNil(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(group string) bool
	}{
		{"joining the group", func(g string) bool { return g == "svc" }},
		{"replaying the dedup topic", func(g string) bool { return strings.HasPrefix(g, "svc.handled.reader.") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := newBroker(t)
			tr := &stallSubscribe{Transport: br, match: tc.match, entered: make(chan struct{}, 1)}
			s, err := rpc.NewServer(tr, rpc.WithName("svc"), quiet)
			require.NoError(t, err)
			rpc.Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })

			assert.NoError(t, stopWhileStalled(t, s, tr), "a stop while starting is not a failure")

			// The same server serves once the transport lets it join.
			tr.match = nil
			serveT(t, s)
			c := newClient(t, br)
			callCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			got, err := rpc.Call[string](callCtx, c, "echo", "after")
			require.NoError(t, err)
			assert.Equal(t, "after", got)
		})
	}
}

// A join that fails while ctx is alive is still Serve's error.
func TestServeJoinFailureIsAnError(t *testing.T) {
	br := newBroker(t)
	boom := errors.New("broker says no")
	tr := &stallSubscribe{Transport: br, match: func(g string) bool { return g == "svc" }, entered: make(chan struct{}, 1), fail: boom}
	s, err := rpc.NewServer(tr, rpc.WithName("svc"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Serve(ctx)
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), `join group "svc"`)
}

// A start that failed for another reason than the stop, which the stop
// then hides from Serve's caller (Serve returns nil), is logged as a
// warning, not at debug level: a refused join must be seen somewhere.
func TestServeStopHidingAStartFailureWarns(t *testing.T) {
	br := newBroker(t)
	tr := &stallSubscribe{Transport: br, match: func(g string) bool { return g == "svc" }, entered: make(chan struct{}, 1),
		late: errors.New("join refused by the broker")}
	logs := &testutil.SyncBuffer{}
	warnings := slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})
	s, err := rpc.NewServer(tr, rpc.WithName("svc"), rpc.WithLogger(slog.New(warnings)))
	require.NoError(t, err)
	rpc.Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	require.NoError(t, stopWhileStalled(t, s, tr))
	assert.Contains(t, logs.String(), `level=WARN msg="rpc: Serve stopped before it started serving; starting had failed"`)
}
