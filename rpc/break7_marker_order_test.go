package rpc_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// orderBroker is the embedded broker, watched: it records, in the order a
// produce appends them, the ids of the dedup markers, and reports a reply
// whose marker was not appended before it.
type orderBroker struct {
	*memory.Broker
	mu       sync.Mutex
	marked   map[string]bool
	replies  int
	unmarked []string
}

func (o *orderBroker) note(msgs []transport.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		switch {
		case strings.HasSuffix(m.Topic, ".handled"):
			o.marked[m.Key] = true
		case m.Topic == "replies":
			o.replies++
			if !o.marked[m.Key] {
				o.unmarked = append(o.unmarked, m.Key)
			}
		}
	}
}

// Produce and ProduceOwned append a batch's records one at a time, as a
// broker that writes partitions one after another does: what is appended
// first is visible first.
func (o *orderBroker) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	o.note(msgs)
	return o.Broker.Produce(ctx, msgs...)
}

func (o *orderBroker) ProduceOwned(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	o.note(msgs)
	return o.Broker.ProduceOwned(ctx, msgs...)
}

// TestBreak7MarkerBeforeReply: a reply is never appended before its dedup
// marker. Otherwise a caller can see its reply, and another instance take
// the request over (a twin with the same instance id, a rebalance) and
// catch its dedup reader up, before the marker exists: the request runs
// again. TestInstanceFromEnvFencesTwin failed that way about 1 run in 10
// under -race (the twin ran the request the fenced server had answered
// last but not committed).
func TestBreak7MarkerBeforeReply(t *testing.T) {
	b := newBroker(t, memory.WithTopic("jobs", 2))
	ob := &orderBroker{Broker: b, marked: map[string]bool{}}
	s, err := rpc.NewServer(ob, rpc.WithName("srv"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { return n, nil })
	serveAsync(t, s)
	c, err := rpc.NewClient(ob, rpc.WithName("cli"), rpc.WithReplyTopic("replies"), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	for n := range 20 {
		got, err := rpc.Call[int](t.Context(), c, "jobs", n, rpc.WithTimeout(10*time.Second))
		require.NoError(t, err)
		require.Equal(t, n, got)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	require.Equal(t, 20, ob.replies)
	require.Empty(t, ob.unmarked, "replies appended before their markers")
}
