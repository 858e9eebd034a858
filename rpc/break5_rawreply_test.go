package rpc

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BUG (break5): a handler's result given as json.RawMessage (or []byte)
// belongs to the handler, which may reuse its buffer once it has returned
// (owned.go: "A payload given as []byte or json.RawMessage belongs to the
// caller (or the handler), who may reuse it"): its reply is therefore
// produced with Produce, which copies. But the dedup entry made by settle
// holds the reply as built (handledEntry.sent.Value is the handler's
// slice), and a duplicate delivery of the request is answered with it
// (outResend). A handler that reuses its buffer for the next request thus
// rewrites the stored reply of the one before: the duplicate is answered
// with another request's result (and a concurrent rewrite is a data race
// with the resend's Produce).
func TestBreak5RawReplyReusedBufferCorruptsDedupReply(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(b, WithName("srv"), WithConcurrency(1), quiet)
	require.NoError(t, err)
	var buf []byte // the handler's own, reused from one request to the next
	s.HandleFunc("raw", func(ctx context.Context, r *Request) (any, error) {
		buf = append(buf[:0], r.Value...)
		return json.RawMessage(buf), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(b, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()

	r1, err := c.Call(context.Background(), "raw", json.RawMessage(`"first"`), WithTimeout(5*time.Second))
	require.NoError(t, err)
	require.Equal(t, `"first"`, string(r1.Value))
	r2, err := c.Call(context.Background(), "raw", json.RawMessage(`"other"`), WithTimeout(5*time.Second))
	require.NoError(t, err)
	require.Equal(t, `"other"`, string(r2.Value))

	// The first request delivered again (a producer's retry, a resend):
	// the dedup window answers it with the reply it stored.
	var first transport.Message
	for p := range b.Topics()["raw"] {
		recs, err := b.Fetch(context.Background(), "raw", p, 0, 10)
		require.NoError(t, err)
		for _, m := range recs {
			if id, _ := m.Header(HeaderID); id == r1.CorrelationID {
				first = m
			}
		}
	}
	require.NotEmpty(t, first.Topic, "the first request is in its topic")
	again := transport.Message{Topic: first.Topic, Partition: first.Partition, ManualPartition: true,
		Key: first.Key, Value: first.Value, Headers: first.Headers}
	_, err = b.Produce(context.Background(), again)
	require.NoError(t, err)

	var replies []string
	require.Eventually(t, func() bool {
		replies = replies[:0]
		for p := range b.Topics()["cli.replies"] {
			recs, err := b.Fetch(context.Background(), "cli.replies", p, 0, 100)
			require.NoError(t, err)
			for _, m := range recs {
				if cid, _ := m.Header(HeaderCorrelationID); cid == r1.CorrelationID {
					replies = append(replies, string(m.Value))
				}
			}
		}
		return len(replies) == 2
	}, 5*time.Second, 5*time.Millisecond, "the duplicate is answered again")
	require.Equal(t, []string{`"first"`, `"first"`}, replies,
		"the duplicate's reply is the first reply, not the handler's buffer as rewritten by the next request")
}
