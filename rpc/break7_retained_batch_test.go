package rpc_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// hangingReplies is the embedded broker with a Produce that, for a batch
// holding a reply, behaves as transport/upstash's does when the request is
// in flight and ctx ends: it returns ctx's error at once, and the answer,
// arriving later, is read against the caller's msgs (upstash's flusher
// checks and fills in the records of the produceCall, which keeps the
// caller's slice). checked gets what that later read saw.
type hangingReplies struct {
	transport.Transport // the broker, without its ProduceOwned: rpc uses Produce
	hung                chan struct{}
	checked             chan error
}

func (h *hangingReplies) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if !slices.ContainsFunc(msgs, func(m transport.Message) bool { return m.Topic == "replies" }) {
		return h.Transport.Produce(ctx, msgs...)
	}
	snapshot := slices.Clone(msgs)
	select {
	case h.hung <- struct{}{}:
	default:
	}
	<-ctx.Done()
	go func() {
		time.Sleep(20 * time.Millisecond) // the answer comes after the caller left
		var err error
		for i := range msgs {
			if msgs[i].Topic != snapshot[i].Topic || msgs[i].Key != snapshot[i].Key || len(msgs[i].Headers) != len(snapshot[i].Headers) {
				err = fmt.Errorf("record %d changed under the transport: topic %q → %q", i, snapshot[i].Topic, msgs[i].Topic)
				break
			}
		}
		h.checked <- err
	}()
	return nil, fmt.Errorf("produce: %w (the request was in flight: the records may have been appended)", ctx.Err())
}

// TestBreak7ReplyBatchKeptByTransportAfterHardStop: a transport that still
// reads a produce's records after returning ctx's error (upstash's
// producer, whose request was in flight) must not see them change. The
// worker's reply batch, reused from one reply to the next, was cleared as
// soon as the produce returned, under the transport's reads (a data race;
// upstash's checks of the answer would then see other records).
func TestBreak7ReplyBatchKeptByTransportAfterHardStop(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	b := newBroker(t, memory.WithTopic("jobs", 1))
	h := &hangingReplies{Transport: b, hung: make(chan struct{}, 1), checked: make(chan error, 4)}
	s, err := rpc.NewServer(h, rpc.WithName("srv"), rpc.WithDrainTimeout(10*time.Millisecond), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { return n, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	c, err := rpc.NewClient(b, rpc.WithName("cli"), rpc.WithReplyTopic("replies"), quiet)
	require.NoError(t, err)
	defer c.Close()
	callDone := make(chan error, 1)
	go func() {
		_, err := rpc.Call[int](context.Background(), c, "jobs", 1, rpc.WithTimeout(20*time.Second))
		callDone <- err
	}()
	select { // the request was handled: its reply's produce hangs
	case <-h.hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the reply's produce did not start")
	}
	cancel()
	select {
	case <-served:
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
	select {
	case err := <-h.checked:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the reply was never produced")
	}
	require.NoError(t, c.Close())
	<-callDone
}
