package rpctest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A Poll blocked in another goroutine returns a record soon after it is
// produced (the wait is bounded, not timed).
func testLongPollWakeUp(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartLatest, topic))
	ctx, cancel := context.WithTimeout(t.Context(), CaseTimeout)
	defer cancel()
	started, result := pollInBackground(ctx, c)
	<-started
	out := mustProduce(t, e.tr, transport.Message{Topic: topic, Partition: int32(e.parts - 1), ManualPartition: true, Value: []byte("wake up")})
	r := awaitPoll(t, result, "record produced while Poll was waiting")
	require.NoError(t, r.err)
	requireExactlyOnce(t, out, r.msgs)
}

// A Poll that ends without data (its deadline, or the transport's own poll
// window) does not end the stream: data produced later still arrives.
func testEmptyPoll(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartLatest, topic))
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), quietPeriod/3)
		msgs, err := c.Poll(ctx)
		cancel()
		require.Empty(t, msgs, "Poll of an empty topic")
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded, "Poll of an empty topic may only return empty or ctx.Err()")
		}
	}
	out := mustProduce(t, e.tr, transport.Message{Topic: topic, Value: []byte("later")})
	got := pollUntil(t, c, 1, waitTimeout)
	requireExactlyOnce(t, out, got)
}

// Poll returns ctx.Err() when ctx ends first, promptly, with no records, and
// the consumer keeps working (no record is lost to the cancelled Poll).
func testPollContextError(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartLatest, topic))

	done, cancel := context.WithCancel(t.Context())
	cancel()
	msgs, err := c.Poll(done)
	require.ErrorIs(t, err, context.Canceled, "Poll with a cancelled context")
	require.Empty(t, msgs)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started, result := pollInBackground(ctx, c)
	<-started
	cancel()
	r := awaitPoll(t, result, "context cancelled")
	require.ErrorIs(t, r.err, context.Canceled, "blocked Poll whose context was cancelled")
	require.Empty(t, r.msgs)

	out := mustProduce(t, e.tr, e.onePerPartition(topic, "after-cancel")...)
	got := pollUntil(t, c, len(out), waitTimeout)
	requireExactlyOnce(t, out, got)
}

// A Poll that returns ctx.Err() has taken no records: records produced while
// Polls keep ending on their deadlines (1 to 10 ms) all arrive, once and in
// order.
func testCancelledPollLosesNothing(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartLatest, topic))
	const n = 60
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var (
		got  []transport.Message
		perr error
	)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for i := 0; len(got) < n && ctx.Err() == nil; i++ {
			pctx, pcancel := context.WithTimeout(ctx, time.Duration(1+i%10)*time.Millisecond)
			msgs, err := c.Poll(pctx)
			expired := pctx.Err() != nil
			pcancel()
			got = append(got, msgs...)
			if err != nil && !(expired && errors.Is(err, context.DeadlineExceeded)) {
				if ctx.Err() == nil {
					perr = err
				}
				return
			}
		}
	}()
	// Records are paced, not waited for: spread over time, they land at
	// every phase of the Polls' deadlines.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var out []transport.Message
	for i := range n {
		<-tick.C
		m := transport.Message{Topic: topic, Partition: int32(i % e.parts), ManualPartition: true, Value: fmt.Appendf(nil, "v%d", i)}
		out = append(out, mustProduce(t, e.tr, m)...)
	}
	<-polled
	require.NoError(t, perr, "Poll")
	requireExactlyOnce(t, out, got)
	requireOffsetOrder(t, got)
}

// Consumer.Close wakes a blocked Poll with ErrClosed; later Poll and Commit
// fail with ErrClosed; Close is idempotent; the transport keeps working and
// the group hands the partitions to the next member.
func testConsumerClose(t *testing.T, e *tenv) {
	topic := e.topic()
	sub := e.sub(transport.StartEarliest, topic)
	c := mustSubscribe(t, e.tr, sub)
	out := mustProduce(t, e.tr, e.onePerPartition(topic, "before-close")...)
	got := pollUntil(t, c, len(out), waitTimeout)
	requireExactlyOnce(t, out, got)

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	started, result := pollInBackground(ctx, c)
	<-started
	closeWithin(t, "Consumer.Close", c.Close, false)
	r := awaitPoll(t, result, "consumer closed")
	require.ErrorIs(t, r.err, transport.ErrClosed, "Poll blocked when the consumer closed (records %s)", describe(r.msgs))

	msgs, err := c.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed, "Poll after Close")
	require.Empty(t, msgs)
	require.ErrorIs(t, c.Commit(ctx, got...), transport.ErrClosed, "Commit after Close")
	closeWithin(t, "second Consumer.Close", c.Close, false)

	// Nothing was committed: the next member of the group reads it all.
	next := mustSubscribe(t, e.tr, sub)
	again := pollUntil(t, next, len(out), waitTimeout)
	requireExactlyOnce(t, out, again)
}

// Transport.Close wakes blocked Polls with ErrClosed; afterwards every method
// of the transport and of its consumers fails with ErrClosed, and Close is
// idempotent.
func testTransportClose(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, topic))
	out := mustProduce(t, e.tr, transport.Message{Topic: topic, Value: []byte("before-close")})
	got := pollUntil(t, c, 1, waitTimeout)
	requireExactlyOnce(t, out, got)
	tailer, canTail := e.tr.(transport.Tailer)

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	started, result := pollInBackground(ctx, c)
	<-started
	closeWithin(t, "Transport.Close", e.tr.Close, false)
	r := awaitPoll(t, result, "transport closed")
	require.ErrorIs(t, r.err, transport.ErrClosed, "Poll blocked when the transport closed (records %s)", describe(r.msgs))

	_, err := e.tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("after-close")})
	assert.ErrorIs(t, err, transport.ErrClosed, "Produce after Close")
	sc, err := e.tr.Subscribe(ctx, e.sub(transport.StartEarliest, topic))
	assert.ErrorIs(t, err, transport.ErrClosed, "Subscribe after Close")
	if sc != nil {
		_ = sc.Close()
	}
	if canTail {
		tc, err := tailer.Tail(ctx, topic)
		assert.ErrorIs(t, err, transport.ErrClosed, "Tail after Close")
		if tc != nil {
			_ = tc.Close()
		}
	}
	msgs, err := c.Poll(ctx)
	assert.ErrorIs(t, err, transport.ErrClosed, "Consumer.Poll after Transport.Close")
	assert.Empty(t, msgs)
	assert.ErrorIs(t, c.Commit(ctx, got...), transport.ErrClosed, "Consumer.Commit after Transport.Close")
	closeWithin(t, "Consumer.Close after Transport.Close", c.Close, true)
	closeWithin(t, "second Transport.Close", e.tr.Close, false)
}
