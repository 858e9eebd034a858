package rpc_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A service that only notifies needs no reply topic with WithoutReplies: on
// a broker that does not create topics (Upstash's console, kafka-rest
// without auto-create), NewClient otherwise fails on the missing
// "<name>.replies". Notify writes what it always writes; Call says at
// once, and without sending anything, that the client reads no replies.
func TestWithoutRepliesNotifiesWithNoReplyTopic(t *testing.T) {
	b := newBroker(t, memory.WithAutoCreate(false))
	require.NoError(t, b.CreateTopic("jobs", 1))

	_, err := rpc.NewClient(b, rpc.WithName("notifier"), quiet)
	require.ErrorIs(t, err, transport.ErrUnknownTopic, "without the option the reply topic must exist")

	c, err := rpc.NewClient(b, rpc.WithName("notifier"), quiet, rpc.WithoutReplies())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.Notify(ctx, "jobs", map[string]int{"report": 7}))

	start := time.Now()
	_, err = rpc.Call[map[string]int](ctx, c, "jobs", map[string]int{"report": 8})
	require.ErrorIs(t, err, rpc.ErrNoReplies)
	assert.Equal(t, rpc.CodeFailedPrecondition, rpc.CodeOf(err))
	assert.Less(t, time.Since(start), time.Second, "refused at once, not at the call's deadline")
	_, err = c.Call(ctx, "jobs", map[string]int{"report": 9})
	require.ErrorIs(t, err, rpc.ErrNoReplies)

	msgs, err := b.Fetch(ctx, "jobs", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "the refused calls sent nothing")
	var got map[string]int
	require.NoError(t, json.Unmarshal(msgs[0].Value, &got))
	assert.Equal(t, map[string]int{"report": 7}, got)
	kind, _ := msgs[0].Header(rpc.HeaderKind)
	assert.Equal(t, string(rpc.KindNotify), kind)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "a second Close is a no-op")
	_, err = c.Call(ctx, "jobs", map[string]int{"report": 10})
	require.ErrorIs(t, err, rpc.ErrClosed, "closed first: as any closed client's call")
}
