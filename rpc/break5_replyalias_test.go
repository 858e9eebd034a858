package rpc

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BUG (break5, not fixed: a documented trade of ProduceOwned): on the
// embedded broker, the Value of the *Reply a Call returns is the very
// slice the server encoded and handed over, which the server's dedup
// entry (handledEntry.sent) and the dedup marker in <group>.handled also
// hold. A caller that writes into its reply's Value (reuses it as a
// buffer, decodes in place) therefore rewrites the reply the server
// stores: a later duplicate of the request is answered with the caller's
// bytes, and the group's other servers learn them from the marker. Before
// ProduceOwned the caller's Reply held the broker's private copy. The
// Reply doc now says its Value and Headers are read-only; a fix would copy
// the reply's Value on delivery (one allocation per call).
func TestBreak5CallerWritesReplyRewritesDedupReply(t *testing.T) {
	t.Skip("BUG: a caller writing into Reply.Value rewrites the server's stored dedup reply (shared through ProduceOwned); documented read-only instead of copied")
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(b, WithName("srv"), quiet)
	require.NoError(t, err)
	Handle(s, "echo", func(ctx context.Context, v string) (string, error) { return v, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(b, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()

	r1, err := c.Call(context.Background(), "echo", "first", WithTimeout(5*time.Second))
	require.NoError(t, err)
	require.Equal(t, `"first"`, string(r1.Value))
	r1.Value[1] = 'X' // the caller's own reply, it believes

	var first transport.Message
	recs, err := b.Fetch(context.Background(), "echo", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	first = recs[0]
	_, err = b.Produce(context.Background(), transport.Message{Topic: first.Topic, Partition: first.Partition, ManualPartition: true,
		Key: first.Key, Value: first.Value, Headers: first.Headers})
	require.NoError(t, err)
	var replies []string
	require.Eventually(t, func() bool {
		replies = replies[:0]
		recs, err := b.Fetch(context.Background(), "cli.replies", 0, 0, 100)
		require.NoError(t, err)
		for _, m := range recs {
			if cid, _ := m.Header(HeaderCorrelationID); cid == r1.CorrelationID {
				replies = append(replies, string(m.Value))
			}
		}
		return len(replies) == 2
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, `"first"`, replies[1], "the duplicate is answered with the server's reply, not the caller's rewrite")
}
