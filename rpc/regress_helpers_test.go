package rpc_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// hookTransport wraps a transport and lets a test fail or delay Produce and
// Consumer.Commit. A hook returning an error stops the call before it
// reaches the wrapped transport. It does not implement transport.Tailer.
type hookTransport struct {
	transport.Transport
	produce func(ctx context.Context, msgs []transport.Message) error
	commit  func(ctx context.Context, msgs []transport.Message) error
}

func (h *hookTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if h.produce != nil {
		if err := h.produce(ctx, msgs); err != nil {
			return nil, err
		}
	}
	return h.Transport.Produce(ctx, msgs...)
}

func (h *hookTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := h.Transport.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	return &hookConsumer{Consumer: c, h: h}, nil
}

type hookConsumer struct {
	transport.Consumer
	h *hookTransport
}

func (c *hookConsumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	if c.h.commit != nil {
		if err := c.h.commit(ctx, msgs); err != nil {
			return err
		}
	}
	return c.Consumer.Commit(ctx, msgs...)
}

// startServe serves s until the returned stop is called or the test ends.
func startServe(t *testing.T, s *rpc.Server) (stop func() error) {
	t.Helper()
	return rpctest.Serve(t, s)
}

// runCounter counts handler runs per request payload.
type runCounter struct {
	mu    sync.Mutex
	runs  map[int]int
	start map[int]time.Time // first entry
	last  time.Time
}

func newRunCounter() *runCounter {
	return &runCounter{runs: make(map[int]int), start: make(map[int]time.Time)}
}

// first returns when n's handler was first entered.
func (c *runCounter) first(n int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start[n]
}

func (c *runCounter) enter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[n]++
	c.last = time.Now()
	if c.runs[n] == 1 {
		c.start[n] = c.last
	}
}

func (c *runCounter) get(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[n]
}

func (c *runCounter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs)
}

// twice returns the payloads whose handler ran more than once.
func (c *runCounter) twice() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]int{}
	for n, k := range c.runs {
		if k > 1 {
			out[n] = k
		}
	}
	return out
}

// idleFor reports whether no handler was entered for d.
func (c *runCounter) idleFor(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.last) >= d
}

// silent is a logger whose handler takes no lock: unlike a TextHandler, it
// adds no synchronization between goroutines that would hide a data race
// from the race detector.
var silent = rpc.WithLogger(slog.New(silentHandler{}))

type silentHandler struct{}

func (silentHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (silentHandler) Handle(context.Context, slog.Record) error { return nil }
func (h silentHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h silentHandler) WithGroup(string) slog.Handler           { return h }

// committedAt waits until group has committed offset want on topic's
// partition.
func committedAt(t *testing.T, b interface {
	Committed(group, topic string, partition int32) (int64, error)
}, group, topic string, partition int32, want int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		off, err := b.Committed(group, topic, partition)
		return err == nil && off == want
	}, 8*time.Second, 5*time.Millisecond, "group %s commits %s[%d] up to %d", group, topic, partition, want)
}
