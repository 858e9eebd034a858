package memory

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A Tail's consumer carries (Produce, then Poll); a group member does not
// (see tailConsumer). The rules themselves are rpctest's
// TailPollCarrying cases, which the memory conformance run checks.
func TestTailPollCarrying(t *testing.T) {
	b, err := New(WithTopic("in", 1), WithTopic("out", 1), WithAutoCreate(false))
	require.NoError(t, err)
	defer b.Close()
	tail, err := b.Tail(t.Context(), "in")
	require.NoError(t, err)
	cp, ok := tail.(transport.CarryingPoller)
	require.True(t, ok, "a Tail's consumer implements transport.CarryingPoller")
	member, err := b.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"in"}})
	require.NoError(t, err)
	defer member.Close()
	_, ok = member.(transport.CarryingPoller)
	assert.False(t, ok, "a group member does not carry")

	_, err = b.Produce(t.Context(), transport.Message{Topic: "in", Value: []byte("reply")})
	require.NoError(t, err)
	var written []transport.Message
	calls := 0
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("request")}}, func(w []transport.Message, err error) {
		calls++
		require.NoError(t, err)
		written = w
	})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
	require.Len(t, written, 1)
	assert.Equal(t, int64(0), written[0].Offset)
	require.Len(t, got, 1)
	assert.Equal(t, "reply", string(got[0].Value))

	// Refused: nothing written, nothing polled.
	_, err = b.Produce(t.Context(), transport.Message{Topic: "in", Value: []byte("second")})
	require.NoError(t, err)
	var ackErr error
	got, err = cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("ok")}, {Topic: "nope", Value: []byte("x")}},
		func(_ []transport.Message, err error) { ackErr = err })
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	require.ErrorIs(t, ackErr, transport.ErrUnknownTopic)
	assert.Empty(t, got)
	_, latest, err := b.Offsets("out", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), latest)
	got, err = tail.Poll(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "second", string(got[0].Value))

	require.NoError(t, tail.Close())
	_, err = cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("closed")}}, func(_ []transport.Message, err error) { ackErr = err })
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, ackErr, transport.ErrClosed)
}
