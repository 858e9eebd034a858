package rpc

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// waitingTransport is the embedded broker without ProduceOwned whose
// Produce waits on its context (ctx.Done), as a network transport does,
// and keeps every context it was given.
type waitingTransport struct {
	transport.Transport // the broker, without its ProduceOwned
	b                   *memory.Broker
	mu                  sync.Mutex
	ctxs                []context.Context
}

func (w *waitingTransport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	cons, err := w.b.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	// Only the Consumer: a reply reader that carries requests would
	// produce them itself, and Produce would see no call's context.
	return struct{ transport.Consumer }{cons}, nil
}

func (w *waitingTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
	}
	w.mu.Lock()
	w.ctxs = append(w.ctxs, ctx)
	w.mu.Unlock()
	return w.b.Produce(ctx, msgs...)
}

// A call's context lives in its pooled state and is reused by later calls
// only when nobody built it: a transport that waited on it (and may still
// hold it) keeps a context that stays ended, whatever calls come after.
func TestCallContextNotReusedOnceBuilt(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(b, WithName("srv"), quiet)
	require.NoError(t, err)
	Handle(s, "ctx", func(ctx context.Context, n int) (int, error) { return n * 2, nil })
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()

	wt := &waitingTransport{Transport: b, b: b}
	c, err := NewClient(wt, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()
	require.Nil(t, c.p.own, "the wrapper has no ProduceOwned: requests go through its Produce")

	const calls = 50
	for i := range calls {
		got, err := Call[int](context.Background(), c, "ctx", i)
		require.NoError(t, err)
		require.Equal(t, 2*i, got)
	}
	wt.mu.Lock()
	defer wt.mu.Unlock()
	require.Len(t, wt.ctxs, calls)
	seen := make(map[context.Context]bool)
	for i, ctx := range wt.ctxs {
		require.False(t, seen[ctx], "call %d was given a context an earlier call's transport still holds", i)
		seen[ctx] = true
		require.Error(t, ctx.Err(), "call %d's context did not end with the call", i)
	}
}

// Without anyone waiting on them, the contexts are reused: the embedded
// broker's calls take no new context per call.
func TestCallContextReusedUnbuilt(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(b, WithName("srv"), quiet)
	require.NoError(t, err)
	Handle(s, "ctx", func(ctx context.Context, n int) (int, error) { return n + 1, nil })
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(b, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()
	for i := range 20 {
		got, err := Call[int](context.Background(), c, "ctx", i)
		require.NoError(t, err)
		require.Equal(t, i+1, got)
	}
	pc := callPool.Get().(*pendingCall)
	defer callPool.Put(pc)
	require.Nil(t, pc.lc.inner.Load(), "a pooled call's context is unbuilt")
	require.False(t, pc.answered)
	require.Equal(t, transport.Message{}, pc.req[0], "the pool keeps no request alive")
}
