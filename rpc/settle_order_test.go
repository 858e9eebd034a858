package rpc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// A transport whose limit is on the batch refuses the reply and its
// marker together while it takes each alone. They then go one after the
// other, and the marker still goes first: the other way round a caller
// could see its reply, and another instance take the request over, before
// the request is known as handled (see sendReply). Before, the reply went
// first here.
func TestReplyAndMarkerTooLargeTogetherMarkerFirst(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	// A record of more than 2,000 bytes must travel alone.
	const aloneOver = 2000
	var (
		mu    sync.Mutex
		order []string // topics of the server's produces that were taken, in order
	)
	ht := &hookTransport{Transport: b, produce: func(_ context.Context, msgs []transport.Message) error {
		for i := range msgs {
			if len(msgs) > 1 && len(msgs[i].Value) > aloneOver {
				return fmt.Errorf("a record of %d bytes in a batch: %w", len(msgs[i].Value), transport.ErrMessageTooLarge)
			}
		}
		mu.Lock()
		for i := range msgs {
			if _, marker := msgs[i].Header("rpc-dedup-of"); marker || msgs[i].Topic != "order.handled" {
				order = append(order, msgs[i].Topic) // not the dedup reader's sentinels
			}
		}
		mu.Unlock()
		return nil
	}}
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("order"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "order", func(ctx context.Context, n int) (string, error) { return strings.Repeat("z", n), nil })
	serveT(t, s)
	c := newClient(t, b)

	out, err := rpc.Call[string](context.Background(), c, "order", 2500, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err, "a reply that fits alone is delivered")
	assert.Len(t, out, 2500)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= 2
	}, 5*time.Second, time.Millisecond, "the marker and the reply are produced")
	mu.Lock()
	defer mu.Unlock()
	marker, reply := -1, -1
	for i, topic := range order {
		switch {
		case topic == "order.handled" && marker < 0:
			marker = i
		case topic != "order.handled":
			if reply < 0 {
				reply = i
			}
		}
	}
	require.GreaterOrEqual(t, marker, 0, "the marker was produced: %v", order)
	require.GreaterOrEqual(t, reply, 0, "the reply was produced: %v", order)
	assert.Less(t, marker, reply, "the marker goes before the reply: %v", order)
}
