package rpc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// failingReplies is a transport whose produces to the reply topic fail
// with a transient error while failing is set.
type failingReplies struct {
	transport.Transport
	topic   string
	failing atomic.Bool
}

func (f *failingReplies) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	for i := range msgs {
		if f.failing.Load() && msgs[i].Topic == f.topic {
			return nil, errors.New("broker briefly away")
		}
	}
	return f.Transport.Produce(ctx, msgs...)
}

// attemptLog keeps the attempts attribute of each "not produced yet"
// warning.
type attemptLog struct {
	mu       sync.Mutex
	attempts []int64
}

func (h *attemptLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *attemptLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "rpc: reply not produced yet; retrying" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "attempts" {
			h.mu.Lock()
			h.attempts = append(h.attempts, a.Value.Int64())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}
func (h *attemptLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *attemptLog) WithGroup(string) slog.Handler      { return h }

func (h *attemptLog) seen() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int64(nil), h.attempts...)
}

// A reply whose produce keeps failing is warned about again while it
// lasts (every replyWarnEvery attempts after the fifth), with the count of
// attempts, not once at the fifth and then never: a worker held by it said
// nothing for as long as the broker stayed away. Once the produce works,
// the reply arrives.
func TestReplyProduceKeepsWarningWhileItFails(t *testing.T) {
	old := replyWarnEvery
	replyWarnEvery = 1
	t.Cleanup(func() { replyWarnEvery = old })

	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	tr := &failingReplies{Transport: b, topic: "replies"}
	logs := &attemptLog{}
	s, err := NewServer(tr, WithName("svc"), WithDedupTopic(""), WithLogger(slog.New(logs)))
	require.NoError(t, err)
	Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
	}()

	c, err := NewClient(b, WithReplyTopic("replies"), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer c.Close()
	tr.failing.Store(true)
	callCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	type result struct {
		v   string
		err error
	}
	got := make(chan result, 1)
	go func() {
		v, err := Call[string](callCtx, c, "echo", "hello")
		got <- result{v, err}
	}()

	deadline := time.Now().Add(20 * time.Second)
	for len(logs.seen()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the log, bounded by deadline
	}
	seen := logs.seen()
	require.GreaterOrEqual(t, len(seen), 3, "warnings while the reply's produce failed: %v", seen)
	assert.Equal(t, []int64{5, 6, 7}, seen[:3], "the attempts each warning reports")

	tr.failing.Store(false)
	select {
	case r := <-got:
		require.NoError(t, r.err)
		assert.Equal(t, "hello", r.v)
	case <-time.After(20 * time.Second):
		t.Fatal("the reply never came once the produce worked")
	}
}
