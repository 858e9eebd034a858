package rpctest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The rules of transport.CarryingPoller, for transports that declare
// Features.CarryingPoller.

func needsCarrying(f Features) string {
	if !f.CarryingPoller {
		return "transport does not declare Features.CarryingPoller"
	}
	return ""
}

// carryOpener returns a new consumer of topic that implements
// transport.CarryingPoller, reading from before any record the case
// produces after the call, or skips the case.
type carryOpener func(t *testing.T, e *tenv, topic string) (transport.Consumer, transport.CarryingPoller)

// onMember runs a CarryingPoller case on a group member (Subscribe).
func onMember(run func(*testing.T, *tenv, carryOpener)) func(*testing.T, *tenv) {
	return func(t *testing.T, e *tenv) { run(t, e, carryingConsumer) }
}

// onTail runs a CarryingPoller case on a Tail's consumer, when the
// transport is a transport.Tailer whose consumers implement the
// capability (an rpc client reads its replies with one, and sends its
// requests with its reads).
func onTail(run func(*testing.T, *tenv, carryOpener)) func(*testing.T, *tenv) {
	return func(t *testing.T, e *tenv) { run(t, e, carryingTail) }
}

// carryingConsumer subscribes a new group to topic from the earliest
// offset and requires its Consumer to implement transport.CarryingPoller.
func carryingConsumer(t *testing.T, e *tenv, topic string) (transport.Consumer, transport.CarryingPoller) {
	t.Helper()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, topic))
	cp, ok := c.(transport.CarryingPoller)
	require.True(t, ok, "Features.CarryingPoller is declared, but the Consumer (%T) does not implement transport.CarryingPoller", c)
	return c, cp
}

// carryingTail tails topic, skipping the case when the transport is not a
// transport.Tailer or its tail does not implement
// transport.CarryingPoller. It polls the tail once (nothing is there yet)
// before returning, as a reply reader does all the time: a transport may
// learn from its first read whether its server takes records with one.
func carryingTail(t *testing.T, e *tenv, topic string) (transport.Consumer, transport.CarryingPoller) {
	t.Helper()
	tailer, ok := e.tr.(transport.Tailer)
	if !ok {
		t.Skipf("%T does not implement transport.Tailer", e.tr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := tailer.Tail(ctx, topic)
	require.NoError(t, err, "Tail(%q)", topic)
	t.Cleanup(func() { closeWithin(t, "Consumer.Close of a tail (suite cleanup)", c.Close, true) })
	cp, ok := c.(transport.CarryingPoller)
	if !ok {
		t.Skipf("the transport's Tail consumer (%T) does not implement transport.CarryingPoller", c)
	}
	pollNone(t, c)
	return c, cp
}

// acked records the calls of one PollCarrying's acked.
type acked struct {
	calls   atomic.Int32
	written []transport.Message
	err     error
}

func (a *acked) fn(written []transport.Message, err error) {
	if a.calls.Add(1) == 1 {
		a.written, a.err = written, err
	}
}

// pollCarrying calls PollCarrying with a deadline of waitTimeout and
// requires acked to have been called exactly once when it returns.
func pollCarrying(t *testing.T, cp transport.CarryingPoller, msgs ...transport.Message) ([]transport.Message, *acked, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	a := &acked{}
	got, err := cp.PollCarrying(ctx, msgs, a.fn)
	require.Equal(t, int32(1), a.calls.Load(), "acked must be called exactly once, before PollCarrying returns")
	return got, a, err
}

// PollCarrying produces its records as Produce would (all of them, in
// order, with Partition, Offset and Time filled in), tells acked so, and
// returns the records polled as Poll would.
func testPollCarryingRoundTrip(t *testing.T, e *tenv, open carryOpener) {
	in, out := e.topic(), e.topic()
	c, cp := open(t, e, in)
	mustProduce(t, e.tr, transport.Message{Topic: in, Key: "k", Value: []byte("request")})

	carried := []transport.Message{
		{Topic: out, Key: "reply-key", Value: []byte("reply"), Headers: []transport.Header{{Key: "h", Value: "v"}}},
		{Topic: out, Partition: 0, ManualPartition: true, Value: []byte("marker")},
	}
	got, a, err := pollCarrying(t, cp, carried...)
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, len(carried))
	for i, m := range a.written {
		requireSameRecord(t, carried[i], m, "written record")
		assert.False(t, m.Time.IsZero(), "written record %d: Time", i)
		assert.GreaterOrEqual(t, m.Offset, int64(0), "written record %d: Offset", i)
	}
	assert.Equal(t, int32(0), a.written[1].Partition, "ManualPartition honoured")
	if len(got) == 0 { // the poll part may end empty: the record comes with a later Poll
		got = pollUntil(t, c, 1, waitTimeout)
	}
	require.Len(t, got, 1, "polled %s", describe(got))
	assert.Equal(t, "request", string(got[0].Value))
	requireTopicHolds(t, e, out, []byte("reply"), []byte("marker"))
	pollNone(t, c)
}

// A produce that fails writes nothing of its batch, and PollCarrying then
// polls nothing: it returns the produce's error, the one acked gets.
func testPollCarryingFailedProduce(t *testing.T, e *tenv, open carryOpener) {
	in, out := e.topic(), e.topic()
	c, cp := open(t, e, in)
	mustProduce(t, e.tr, transport.Message{Topic: in, Value: []byte("request")})
	bad := []transport.Message{
		{Topic: out, Value: []byte("good")},
		{Topic: out, Partition: int32(e.parts), ManualPartition: true, Value: []byte("past the end")},
	}
	got, a, err := pollCarrying(t, cp, bad...)
	require.ErrorIs(t, err, transport.ErrInvalid)
	require.ErrorIs(t, a.err, transport.ErrInvalid)
	assert.Empty(t, a.written)
	assert.Empty(t, got)
	if e.f.MaxMessageBytes > 0 {
		big := make([]byte, e.f.MaxMessageBytes+1)
		for i := range big {
			big[i] = 'x'
		}
		got, a, err = pollCarrying(t, cp, transport.Message{Topic: out, Value: []byte("good")}, transport.Message{Topic: out, Value: big})
		require.ErrorIs(t, err, transport.ErrMessageTooLarge)
		require.ErrorIs(t, a.err, transport.ErrMessageTooLarge)
		assert.Empty(t, got)
	}
	got = pollUntil(t, c, 1, waitTimeout)
	require.Equal(t, "request", string(got[0].Value), "the failed calls consumed nothing")
	requireTopicHolds(t, e, out)
}

// With no records, acked gets an empty result at once and PollCarrying is
// Poll; a context that ended before the call produces nothing; after
// Close, nothing is produced and the error wraps ErrClosed.
func testPollCarryingEdges(t *testing.T, e *tenv, open carryOpener) {
	in, out := e.topic(), e.topic()
	c, cp := open(t, e, in)
	mustProduce(t, e.tr, transport.Message{Topic: in, Value: []byte("request")})

	got, a, err := pollCarrying(t, cp)
	require.NoError(t, err)
	require.NoError(t, a.err)
	assert.Empty(t, a.written)
	if len(got) == 0 {
		got = pollUntil(t, c, 1, waitTimeout)
	}
	require.Len(t, got, 1)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a = &acked{}
	_, err = cp.PollCarrying(ctx, []transport.Message{{Topic: out, Value: []byte("canceled")}}, a.fn)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, a.err, context.Canceled)

	closeWithin(t, "Consumer.Close", c.Close, true)
	a = &acked{}
	_, err = cp.PollCarrying(t.Context(), []transport.Message{{Topic: out, Value: []byte("closed")}}, a.fn)
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, a.err, transport.ErrClosed)
	require.Equal(t, int32(1), a.calls.Load())
	requireTopicHolds(t, e, out)
}

// acked comes as soon as the produce's outcome is known, before the poll
// part waits for records.
func testPollCarryingAcksFirst(t *testing.T, e *tenv, open carryOpener) {
	in, out := e.topic(), e.topic()
	_, cp := open(t, e, in)
	ackedAt := make(chan []transport.Message, 1)
	type result struct {
		msgs []transport.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		msgs, err := cp.PollCarrying(ctx, []transport.Message{{Topic: out, Value: []byte("reply")}},
			func(written []transport.Message, err error) {
				if err == nil {
					ackedAt <- written
				}
				close(ackedAt)
			})
		done <- result{msgs, err}
	}()
	select {
	case w, ok := <-ackedAt:
		require.True(t, ok, "the produce failed")
		require.Len(t, w, 1)
	case r := <-done:
		t.Fatalf("PollCarrying returned (%s, %v) before acked was called", describe(r.msgs), r.err)
	case <-time.After(waitTimeout):
		t.Fatal("acked was not called while PollCarrying waited for records")
	}
	mustProduce(t, e.tr, transport.Message{Topic: in, Value: []byte("wake")})
	select {
	case r := <-done:
		if r.err != nil {
			require.ErrorIs(t, r.err, context.DeadlineExceeded)
		}
		for _, m := range r.msgs {
			assert.Equal(t, "wake", string(m.Value))
		}
	case <-time.After(2 * waitTimeout):
		t.Fatal("PollCarrying did not return")
	}
	requireTopicHolds(t, e, out, []byte("reply"))
}

// Carried and plain polls of one consumer, taking turns while records
// arrive round after round, the plain ones with short deadlines (a
// canceled Poll loses nothing): every record is delivered exactly once, in
// offset order per partition, whichever kind of poll took it, and every
// carried record is written once.
func testPollCarryingMixedPolls(t *testing.T, e *tenv, open carryOpener) {
	in, out := e.topic(), e.topic()
	c, cp := open(t, e, in)
	var want, got []transport.Message
	var carried [][]byte
	deadline := time.Now().Add(waitTimeout)
	for round := range 4 {
		want = append(want, mustProduce(t, e.tr, e.perPartition(in, fmt.Sprintf("round%d", round), 2)...)...)
		for i := 0; len(got) < len(want); i++ {
			require.True(t, time.Now().Before(deadline), "round %d: polled %d of %d records: %s", round, len(got), len(want), describe(got))
			if i%2 == 1 {
				ctx, cancel := context.WithTimeout(t.Context(), pollSlice)
				msgs, err := c.Poll(ctx)
				cancel()
				if err != nil {
					require.ErrorIs(t, err, context.DeadlineExceeded, "Poll")
				}
				got = append(got, msgs...)
				continue
			}
			v := []byte(fmt.Sprintf("carried-%d-%d", round, i))
			msgs, a, err := pollCarrying(t, cp, transport.Message{Topic: out, Value: v})
			require.NoError(t, a.err, "acked")
			require.Len(t, a.written, 1)
			carried = append(carried, v)
			if err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded, "PollCarrying")
			}
			got = append(got, msgs...)
		}
	}
	requireExactlyOnce(t, want, got)
	requireOffsetOrder(t, got)
	pollNone(t, c)
	requireTopicHolds(t, e, out, carried...)
}
