package rpc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// A call that times out hears its own error; the server, whose handler's
// context carried the same deadline, answers deadline_exceeded a moment
// later. That answer is late by design, and each caller timeout logged a
// warning "late reply dropped" besides the caller's own error: it is
// counted (Stats().Late) and logged at debug. A late reply of another kind
// (a handler that ignored its deadline and succeeded) is still a warning.
func TestLateDeadlineExceededReplyIsNotAWarning(t *testing.T) {
	b := newBroker(t)
	var slogs lockedLog
	s, err := rpc.NewServer(b, rpc.WithName("latedl"), rpc.WithLogger(slog.New(slog.NewTextHandler(&slogs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)
	rpc.Handle(s, "latedl", func(ctx context.Context, mode string) (string, error) {
		switch mode {
		case "now":
			return "done", nil
		case "honour":
			<-ctx.Done()
			// A moment after the deadline (cleaning up, say): the
			// caller has given up by then, as it mostly has when the
			// answer comes at once.
			time.Sleep(100 * time.Millisecond)
			return "", ctx.Err()
		}
		time.Sleep(800 * time.Millisecond) // ignores its deadline
		return "done", nil
	})
	startServe(t, s)
	var logs lockedLog
	c, err := rpc.NewClient(b, rpc.WithName("latedlc"), rpc.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	// Served: a request that expired while the server was still starting
	// would not run, and has no answer.
	_, err = rpc.Call[string](t.Context(), c, "latedl", "now", rpc.WithTimeout(10*time.Second))
	require.NoError(t, err)

	_, err = rpc.Call[string](t.Context(), c, "latedl", "honour", rpc.WithTimeout(500*time.Millisecond))
	require.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err), "%v", err)
	require.Eventually(t, func() bool { return c.Stats().Late == 1 }, 10*time.Second, 5*time.Millisecond,
		"the server's deadline_exceeded answer is counted late: %+v\n%s\n%s", c.Stats(), logs.String(), slogs.String())
	assert.NotContains(t, logs.String(), "late reply dropped", "a deadline_exceeded answer after the call gave up is expected")

	_, err = rpc.Call[string](t.Context(), c, "latedl", "ignore", rpc.WithTimeout(300*time.Millisecond))
	require.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err), "%v", err)
	require.Eventually(t, func() bool { return c.Stats().Late == 2 }, 10*time.Second, 5*time.Millisecond, "%+v", c.Stats())
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "late reply dropped") }, 10*time.Second, 5*time.Millisecond)
	assert.Contains(t, logs.String(), "level=WARN")
}

// A call that timed out says so once, naming the call: the message read
// "deadline_exceeded: rpc: call timed out: rpc: call X: context deadline
// exceeded". It is still rpc.ErrTimeout and context.DeadlineExceeded.
func TestCallTimeoutSaysSoOnce(t *testing.T) {
	b := newBroker(t)
	s, err := rpc.NewServer(b, rpc.WithName("saysonce"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "saysonce", func(ctx context.Context, _ string) (string, error) {
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // no answer before the caller gives up
		return "", ctx.Err()
	})
	startServe(t, s)
	c := newClient(t, b)
	_, err = rpc.Call[string](t.Context(), c, "saysonce", "x", rpc.WithTimeout(100*time.Millisecond))
	require.Error(t, err)
	assert.Equal(t, "deadline_exceeded: rpc: call saysonce: no reply before the deadline (context deadline exceeded)", err.Error())
	assert.ErrorIs(t, err, rpc.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err))

	// The same when the deadline is the context's (it read "rpc: call timed
	// out: rpc: call saysonce: context deadline exceeded").
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = rpc.Call[string](ctx, c, "saysonce", "x")
	require.Error(t, err)
	assert.Equal(t, "deadline_exceeded: rpc: call saysonce: no reply before the deadline (context deadline exceeded)", err.Error())
	assert.ErrorIs(t, err, rpc.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err))
}
