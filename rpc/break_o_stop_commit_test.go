package rpc_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// lockedLog is a log buffer written by the server's goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// breakO (a new user's first session): the README's quick start printed,
// about one run in ten, "WARN rpc: commit failed; will retry ...
// err="context canceled"" after "report ready", on a clean stop. The paced
// commit in flight when Serve's context is canceled is cut short by design
// (Guarantees, "Graceful drain": the final commit takes it), so its
// context error is the stop, not a failure: nothing is to retry, and a
// warning on every clean shutdown teaches users to ignore warnings. Here a
// commit is held in flight, as a REST round trip is, when the stop comes.
func TestBreakOStopCutsCommitWithoutWarning(t *testing.T) {
	b := newBroker(t, memory.WithTopic("ostop", 1))
	t.Cleanup(func() { b.Close() })
	started := make(chan struct{})
	var once sync.Once
	ht := &hookTransport{Transport: b, commit: func(ctx context.Context, msgs []transport.Message) error {
		for _, m := range msgs {
			if m.Topic != "ostop" {
				continue
			}
			first := false
			once.Do(func() { first = true })
			if first {
				// The REST transport's commit returns the context's
				// error when its request is cut short.
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}
		}
		return nil
	}}
	var logs lockedLog
	s, err := rpc.NewServer(ht, rpc.WithName("ostop"), rpc.WithCommitInterval(0),
		rpc.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	require.NoError(t, err)
	rpc.Handle(s, "ostop", func(ctx context.Context, i int) (int, error) { return i, nil })
	stop := startServe(t, s)

	c, err := rpc.NewClient(b, rpc.WithName("ostopc"), silent)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := rpc.Call[int](ctx, c, "ostop", 7)
	require.NoError(t, err)
	require.Equal(t, 7, got)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no commit of ostop started")
	}
	require.NoError(t, stop())

	off, err := b.Committed("ostop", "ostop", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), off, "the final commit took what the cut commit had")
	assert.NotContains(t, logs.String(), "level=WARN", "a clean stop logs no warning")
	assert.NotContains(t, logs.String(), "commit failed")
}
