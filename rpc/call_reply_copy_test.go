package rpc

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The Reply Call returns holds copies of the reply's headers (in room
// allocated with it, see ownedReply) as well as of its Value: a caller
// rewriting them leaves the reply the server stores alone, and a duplicate
// of the request is answered with the server's headers. Over the room (a
// reply with more headers than a successful one of this server has) they
// are copied apart, with the same result. Both with 6 headers and with 7
// (a trace context, which fills the room).
func TestCallReplyHeadersAreTheCallersOwn(t *testing.T) {
	for _, traced := range []bool{false, true} {
		b, err := memory.New()
		require.NoError(t, err)
		defer b.Close()
		quiet := WithLogger(slog.New(slog.DiscardHandler))
		opts := []ServerOption{WithName("srv"), quiet}
		want := 6
		if traced {
			opts = append(opts, WithObserver(tracingObserver{}))
			want = 7
		}
		s, err := NewServer(b, opts...)
		require.NoError(t, err)
		Handle(s, "echo", func(ctx context.Context, v string) (string, error) { return v, nil })
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- s.Serve(ctx) }()
		c, err := NewClient(b, WithName("cli"), quiet)
		require.NoError(t, err)

		r1, err := c.Call(context.Background(), "echo", "first", WithTimeout(5*time.Second))
		require.NoError(t, err)
		recs, err := b.Fetch(context.Background(), "cli.replies", 0, 0, 10)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		stored := slices.Clone(recs[0].Headers)
		require.Len(t, stored, want)
		require.Equal(t, stored, r1.Headers)
		require.NotSame(t, &recs[0].Headers[0], &r1.Headers[0], "a copy, not the stored array")
		for i := range r1.Headers {
			r1.Headers[i].Value = "rewritten"
		}
		require.Equal(t, stored, recs[0].Headers, "the stored reply is untouched")

		reqs, err := b.Fetch(context.Background(), "echo", 0, 0, 10)
		require.NoError(t, err)
		require.Len(t, reqs, 1)
		first := reqs[0]
		_, err = b.Produce(context.Background(), transport.Message{Topic: first.Topic, Partition: first.Partition, ManualPartition: true,
			Key: first.Key, Value: first.Value, Headers: first.Headers})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			recs, err := b.Fetch(context.Background(), "cli.replies", 0, 0, 100)
			require.NoError(t, err)
			return len(recs) == 2 && slices.Equal(stored, recs[1].Headers)
		}, 5*time.Second, 5*time.Millisecond, "the duplicate is answered with the server's headers")
		c.Close()
		cancel()
		require.NoError(t, <-served)
	}
}

// tracingObserver gives every handled request a trace context.
type tracingObserver struct{ nopObserver }

func (tracingObserver) HandleStarted(ctx context.Context, _ *Request) (context.Context, string, func(error)) {
	return ctx, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", func(error) {}
}
