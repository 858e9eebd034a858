package rpc

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// warnCounter counts the "late reply dropped" lines.
type warnCounter struct{ n *atomic.Int64 }

func (h warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "rpc: late reply dropped: its call already gave up" {
		h.n.Add(1)
	}
	return nil
}
func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnCounter) WithGroup(string) slog.Handler      { return h }

// Issue 15, finding 13: a flood of late replies (a peer decides how many)
// is counted in full in ClientStats.Late but logged at most once per
// lateLogEvery, not once each.
func TestLateReplyLogIsRateLimited(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	var lines atomic.Int64
	c, err := NewClient(b, WithReplyTopic("replies"), WithLogger(slog.New(warnCounter{&lines})))
	require.NoError(t, err)
	defer c.Close()
	const n = 2000
	start := time.Now()
	for i := range n {
		id := "call-" + strconv.Itoa(i)
		c.forget(id, true) // a call that gave up
		c.deliver(&transport.Message{Topic: "replies", Value: []byte(`"late"`), Headers: []transport.Header{
			{Key: HeaderVersion, Value: ProtocolVersion}, {Key: HeaderID, Value: "reply-" + id}, {Key: HeaderKind, Value: "reply"}, {Key: HeaderCorrelationID, Value: id},
		}})
	}
	assert.Equal(t, int64(n), c.Stats().Late)
	assert.LessOrEqual(t, lines.Load(), int64(1+time.Since(start)/time.Second), "log lines for %d late replies", n)
	assert.GreaterOrEqual(t, lines.Load(), int64(1))
}

// forget removes a pending call as a call that gave up does (abandoned:
// remembered, so that its late reply is told apart from a foreign one).
func (c *Client) forget(id string, abandoned bool) {
	c.mu.Lock()
	delete(c.pending, id)
	if abandoned {
		c.abandoned.add(id)
	}
	c.mu.Unlock()
}
