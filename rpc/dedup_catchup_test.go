package rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// slowPolls is a transport whose consumers return at most max records a
// poll, each poll taking delay: a dedup topic that takes a while to read.
type slowPolls struct {
	transport.Transport
	max   int
	delay time.Duration
}

func (s *slowPolls) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	c, err := s.Transport.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return &slowConsumer{Consumer: c, max: s.max, delay: s.delay}, nil
}

type slowConsumer struct {
	transport.Consumer
	max     int
	delay   time.Duration
	pending []transport.Message
}

func (c *slowConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	t := time.NewTimer(c.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if len(c.pending) == 0 {
		msgs, err := c.Consumer.Poll(ctx)
		if err != nil {
			return nil, err
		}
		c.pending = msgs
	}
	n := min(c.max, len(c.pending))
	out := c.pending[:n:n]
	c.pending = c.pending[n:]
	return out, nil
}

// The catch-up before Serve takes requests reads the whole dedup topic,
// which the topic's retention bounds (ten minutes of a busy group's
// markers: millions of records). It gave up after a fixed 30 s however
// fast it was reading, and Serve failed to start: a group busy enough could
// not add an instance. It now gives up only when it stops getting anywhere:
// catchUpStall with no record read. (The limit is scaled down here: a
// backlog that takes about 1.2 s to read, a limit of 400 ms.)
func TestDedupCatchUpLongerThanItsLimitWhileReading(t *testing.T) {
	withCatchUpStall(t, 400*time.Millisecond)

	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	s, err := NewServer(&slowPolls{Transport: br, max: 50, delay: 20 * time.Millisecond}, WithName("slowcatch"),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	ctx := context.Background()
	const n = 3000 // 60 polls of 20 ms
	batch := make([]transport.Message, 0, n)
	for i := range n {
		batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", fmt.Sprintf("req-%d", i), nil))
	}
	_, err = br.Produce(ctx, batch...)
	require.NoError(t, err)

	start := time.Now()
	dr, err := startDedupReader(ctx, s, s.dedup)
	require.NoError(t, err, "the catch-up gave up while it was reading")
	t.Cleanup(dr.stop)
	require.Greater(t, time.Since(start), catchUpStall, "the backlog took longer to read than the limit")
	require.True(t, s.dedup.has(fmt.Sprintf("req-%d", n-1)))
}

// A catch-up that reads nothing (the dedup topic's consumer answers no
// record, the sentinel included) still gives up after catchUpStall, and
// Serve reports it.
func TestDedupCatchUpGivesUpWhenNothingComes(t *testing.T) {
	withCatchUpStall(t, 300*time.Millisecond)

	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	s, err := NewServer(&slowPolls{Transport: br, max: 0, delay: time.Millisecond}, WithName("nocatch"),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	start := time.Now()
	_, err = startDedupReader(context.Background(), s, s.dedup)
	require.Error(t, err)
	require.ErrorIs(t, err, errCatchUpStalled)
	require.ErrorContains(t, err, "catching up: no record of the dedup topic read for 300ms")
	require.Less(t, time.Since(start), 5*time.Second)
}

// withCatchUpStall sets catchUpStall to d until the test ends.
func withCatchUpStall(t *testing.T, d time.Duration) {
	old := catchUpStall
	catchUpStall = d
	t.Cleanup(func() { catchUpStall = old })
}
