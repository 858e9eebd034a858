package rpc_test

// Regression tests for the settle stage (issue 13: bugs 1, 2, 7, 9, 11).

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Issue 13, bug 1: a poisoned record whose dead letter could not be written
// before a hard stop must be dead-lettered when it is delivered again to
// the next server of the group; its dedup marker must not answer that
// delivery first.
func TestDeadLetterWrittenOnRedeliveryAfterStop(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var dlqDown atomic.Bool
	dlqDown.Store(true)
	var dlqTries atomic.Int64
	ht := &hookTransport{Transport: b, produce: func(_ context.Context, msgs []transport.Message) error {
		for _, m := range msgs {
			if strings.HasSuffix(m.Topic, rpc.DeadLetterSuffix) && dlqDown.Load() {
				dlqTries.Add(1)
				return fmt.Errorf("dead-letter topic unavailable: %w", rpctest.ErrInjected)
			}
		}
		return nil
	}}
	newServer := func() *rpc.Server {
		s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("g1"), quiet, rpc.WithDrainTimeout(50*time.Millisecond))
		require.NoError(t, err)
		rpc.Handle(s, "poison1", func(ctx context.Context, n int) (int, error) { return n, nil })
		return s
	}
	stop := startServe(t, newServer())
	c := newClient(t, b)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "poison1", "not a number", rpc.WithTimeout(5*time.Second))
		res <- err
	}()
	require.Eventually(t, func() bool { return dlqTries.Load() >= 2 }, 5*time.Second, time.Millisecond,
		"the dead letter is being retried")
	require.NoError(t, stop(), "hard stop while the dead letter is retried")
	dlqDown.Store(false)

	startServe(t, newServer())
	require.Eventually(t, func() bool {
		_, end, err := b.Offsets("poison1"+rpc.DeadLetterSuffix, 0)
		return err == nil && end >= 1
	}, 5*time.Second, 5*time.Millisecond, "the redelivered record reaches the dead-letter topic")
	err := <-res
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err), "the caller is answered: %v", err)
}

// Issue 13, bug 2: a reply that fits the transport's limit is delivered,
// even with the default (persisted) dedup window, whose marker goes with it.
func TestReplyNearTransportLimitDelivered(t *testing.T) {
	b := newBroker(t, memory.WithMaxMessageBytes(2000))
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("srv"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "near2", func(ctx context.Context, n int) (string, error) { return strings.Repeat("x", n), nil })
	serveT(t, s)
	out, err := rpc.Call[string](context.Background(), newClient(t, b), "near2", 1700, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err, "code %s", rpc.CodeOf(err))
	assert.Len(t, out, 1700)
}

// Issue 13, bug 7: the dedup topic keeps the window even when replies are
// large. Scaled down from the 600 replies of 128 KiB against the
// default 64 MiB retention to 600 replies of 4 KiB against 1 MiB of
// retention per partition: the same ratio of reply bytes to retention (the
// markers of the old code, which carried each reply, outgrow retention),
// without holding 75 MiB in the embedded broker under -race.
func TestLargeRepliesKeepDedupWindow(t *testing.T) {
	const (
		n         = 600
		replySize = 4 << 10
	)
	b := newBroker(t, memory.WithRetention(0, 1<<20))
	t.Cleanup(func() { b.Close() })
	runs := newRunCounter()
	newServer := func() *rpc.Server {
		s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("g7"), quiet, rpc.WithConcurrency(8))
		require.NoError(t, err)
		rpc.Handle(s, "big7", func(ctx context.Context, i int) (string, error) {
			runs.enter(i)
			return strings.Repeat("r", replySize), nil
		})
		return s
	}
	stop := startServe(t, newServer())
	c := newClient(t, b)
	const callers = 8
	errs := make(chan error, callers)
	for w := range callers {
		go func() {
			for i := w; i < n; i += callers {
				if _, err := c.Call(context.Background(), "big7", i, rpc.WithTimeout(8*time.Second)); err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		require.NoError(t, <-errs)
	}
	require.NoError(t, stop())

	// A copy of request 0 (same rpc-id), as a producer retry or resend
	// makes, reaches a new server of the group within the window.
	recs, err := b.Fetch(context.Background(), "big7", 0, 0, n)
	require.NoError(t, err)
	var first *transport.Message
	for i := range recs {
		if string(recs[i].Value) == "0" {
			first = &recs[i]
			break
		}
	}
	require.NotNil(t, first, "request 0 is retained")
	copied, err := b.Produce(context.Background(), transport.Message{
		Topic: first.Topic, Key: first.Key, Value: first.Value, Headers: first.Headers,
	})
	require.NoError(t, err)
	startServe(t, newServer())
	committedAt(t, b, "g7", "big7", 0, copied[0].Offset+1)
	assert.Equal(t, 1, runs.get(0), "request 0 ran again within the dedup window")
}

// panicky is a result whose encoding panics.
type panicky struct{}

func (panicky) MarshalJSON() ([]byte, error) { panic("MarshalJSON bug") }

// Issue 13, bug 9: a result whose MarshalJSON panics gets the caller an
// internal error reply; the server survives and keeps serving.
func TestResultMarshalPanicRepliesInternal(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("srv"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "marshal9", func(ctx context.Context, n int) (any, error) {
		if n == 0 {
			return panicky{}, nil
		}
		return n, nil
	})
	serveT(t, s)
	c := newClient(t, b)
	_, err = c.Call(context.Background(), "marshal9", 0, rpc.WithTimeout(5*time.Second))
	require.Error(t, err)
	assert.Equal(t, rpc.CodeInternal, rpc.CodeOf(err), "%v", err)
	out, err := rpc.Call[int](context.Background(), c, "marshal9", 7, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err, "still serving")
	assert.Equal(t, 7, out)
}

// Issue 13, bug 11: an oversize reply is replaced by a resource_exhausted
// reply while copies of the request arrive and are answered from the
// window. Run under -race: the stored reply must not be rewritten while a
// copy reads it. Produces of oversize records are slowed (without any
// synchronization, which would hide the race), so that copies, resent
// every 2ms, arrive while the entry is visible and its reply not yet
// replaced.
func TestOversizeReplyReplacedWhileCopiesArrive(t *testing.T) {
	const limit = 4000
	b := newBroker(t, memory.WithMaxMessageBytes(limit))
	t.Cleanup(func() { b.Close() })
	ht := &hookTransport{Transport: b, produce: func(_ context.Context, msgs []transport.Message) error {
		for _, m := range msgs {
			if len(m.Value) > limit {
				time.Sleep(40 * time.Millisecond) // a slow transport, not a wait for readiness
				break
			}
		}
		return nil
	}}
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), silent, rpc.WithConcurrency(8))
	require.NoError(t, err)
	rpc.Handle(s, "big11", func(ctx context.Context, n int) (string, error) { return strings.Repeat("y", n), nil })
	serveT(t, s)
	c, err := rpc.NewClient(b, rpc.WithName("cli"), silent, rpc.WithResend(2*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	for range 3 {
		_, err = c.Call(context.Background(), "big11", 2*limit, rpc.WithTimeout(5*time.Second))
		require.Error(t, err)
		assert.Equal(t, rpc.CodeResourceExhausted, rpc.CodeOf(err), "%v", err)
	}
	require.Eventually(t, func() bool { return s.Stats().Duplicates > 0 }, 5*time.Second, time.Millisecond,
		"copies of the request were answered from the window")
}
