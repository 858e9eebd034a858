package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A record delivered again while its first delivery is still being handled
// (here: every poll returns each record twice) must not let the watermark
// pass it: its offset is committed only after the reply.
func TestDuplicateDeliveryDoesNotCommitRunningWork(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	ft := rpctest.Faulty(b, rpctest.Faults{PollDuplicate: 1})
	entered, release := make(chan struct{}, 4), make(chan struct{})
	s, err := rpc.NewServer(ft, rpc.WithName("srv"), rpc.WithGroup("g"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "slow", func(ctx context.Context, n int) (int, error) {
		entered <- struct{}{}
		<-release
		return n, nil
	})
	serveT(t, s)
	c := newClient(t, b)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "slow", 1, rpc.WithTimeout(10*time.Second))
		res <- err
	}()
	<-entered
	// Both copies have been polled; give a wrongly dispatched second copy
	// every chance to complete and be committed.
	require.Eventually(t, func() bool { return ft.Stats().PollDuplicate >= 1 }, 5*time.Second, time.Millisecond,
		"the second copy was polled")
	time.Sleep(50 * time.Millisecond) // a window for a wrong commit to happen, not a readiness wait
	off, err := b.Committed("g", "slow", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), off, "nothing committed while the request runs")
	close(release)
	require.NoError(t, <-res)
	require.Eventually(t, func() bool {
		off, _ := b.Committed("g", "slow", 0)
		return off == 1
	}, 5*time.Second, 2*time.Millisecond, "committed once replied")
}

// A handler returning a nil *rpc.Error (the typed-nil mistake) succeeds.
func TestTypedNilErrorIsNoError(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("srv"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "typednil", func(ctx context.Context, n int) (int, error) {
		var e *rpc.Error // a validate() that found nothing wrong
		return n + 1, e
	})
	serveT(t, s)
	out, err := rpc.Call[int](context.Background(), newClient(t, b), "typednil", 1)
	require.NoError(t, err)
	assert.Equal(t, 2, out)
}

// A panicking middleware is recovered like a panicking handler.
func TestMiddlewarePanicRecovered(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	boom := func(next rpc.HandlerFunc) rpc.HandlerFunc {
		return func(ctx context.Context, r *rpc.Request) (any, error) {
			if string(r.Payload()) == "true" {
				panic(errors.New("middleware bug"))
			}
			return next(ctx, r)
		}
	}
	s, err := rpc.NewServer(b, rpc.WithName("srv"), quiet, rpc.WithMiddleware(boom))
	require.NoError(t, err)
	rpc.Handle(s, "mw", func(ctx context.Context, v bool) (bool, error) { return v, nil })
	serveT(t, s)
	c := newClient(t, b)
	_, err = c.Call(context.Background(), "mw", true, rpc.WithTimeout(5*time.Second))
	assert.Equal(t, rpc.CodeInternal, rpc.CodeOf(err))
	out, err := rpc.Call[bool](context.Background(), c, "mw", false, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err, "still serving")
	assert.False(t, out)
}

// When the dead-letter topic cannot be written (no auto-create), the caller
// still gets its error reply.
func TestErrorReplyWithoutDeadLetterTopic(t *testing.T) {
	b, err := memory.New(memory.WithAutoCreate(false), memory.WithTopic("strict", 1), memory.WithTopic("cli.replies", 1),
		memory.WithTopic("srv.handled", 1))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("srv"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "strict", func(ctx context.Context, n int) (int, error) { return n, nil })
	serveT(t, s)
	c := newClient(t, b)
	_, err = c.Call(context.Background(), "strict", "not a number", rpc.WithTimeout(5*time.Second))
	require.Error(t, err)
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err), "answered, not timed out: %v", err)
	assert.False(t, errors.Is(err, rpc.ErrTimeout))
}
