package upstash

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// tailCarryEnv is a REST server with topics "in" and "out" (one partition,
// no auto-creation) and a tail of "in" on a fresh Transport.
type tailCarryEnv struct {
	s    *restServer
	tr   *Transport
	tail transport.Consumer
	cp   transport.CarryingPoller
}

// newTailCarryEnv starts the server; wrap, when not nil, stands in front
// of it (a server without the extension, say). topics are the tail's
// topics, "in" when none.
func newTailCarryEnv(t *testing.T, wrap func(http.Handler) http.Handler, opts []Option, topics ...string) *tailCarryEnv {
	t.Helper()
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
	})
	url := s.URL
	if wrap != nil {
		hs := httptest.NewServer(wrap(s.REST))
		t.Cleanup(hs.Close)
		url = hs.URL
	}
	tr := newTestTransport(t, url, opts...)
	if len(topics) == 0 {
		topics = []string{"in"}
	}
	tail, err := tr.Tail(t.Context(), topics...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tail.Close() })
	cp, ok := tail.(transport.CarryingPoller)
	require.True(t, ok, "the upstash tail implements transport.CarryingPoller")
	return &tailCarryEnv{s: s, tr: tr, tail: tail, cp: cp}
}

func (e *tailCarryEnv) requests() uint64 { return e.s.REST.Stats().Requests }

// learn makes plain Polls of the tail (no records wait), from whose
// answers the Transport learns whether the server takes records with a
// fetch: until it has (carries), or once (!carries: nothing to learn).
// Each Poll is short, and its answer may not come within it on a loaded
// machine: hence the loop.
func (e *tailCarryEnv) learn(t *testing.T, carries bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		got, err := e.tail.Poll(ctx)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		require.Empty(t, got)
		if !carries || e.tr.fetchCarry.Load() != fetchCarryUnknown {
			return
		}
		require.True(t, time.Now().Before(deadline), "no /fetch answer said Kafka-Carry")
	}
}

func (e *tailCarryEnv) pollCarrying(t *testing.T, a *ack, msgs ...transport.Message) ([]transport.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := e.cp.PollCarrying(ctx, msgs, a.fn)
	require.Equal(t, int32(1), a.calls.Load(), "acked is called once, before PollCarrying returns")
	return got, err
}

func (e *tailCarryEnv) produceIn(t *testing.T, v string) {
	t.Helper()
	_, err := e.tr.Produce(t.Context(), transport.Message{Topic: "in", Value: []byte(v)})
	require.NoError(t, err)
}

// outValues reads every record of "out" (a group-free fetch from 0).
func (e *tailCarryEnv) outValues(t *testing.T) []string {
	t.Helper()
	var got []struct {
		Value string `json:"value"`
	}
	e.s.get(t, "POST", "/fetch", `{"topic":"out","partition":0,"offset":0,"timeout":0}`, &got)
	out := []string{}
	for _, m := range got {
		out = append(out, m.Value)
	}
	return out
}

func TestTailPollCarryingRidesOnTheFetch(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.learn(t, true)
	assert.Equal(t, fetchCarryYes, e.tr.fetchCarry.Load(), "the fetch answer said Kafka-Carry: produce")

	e.produceIn(t, "reply-to-an-earlier-request")
	before := e.requests()
	a := newAck()
	request := transport.Message{Topic: "out", Key: "k", Value: []byte("request-1"), Headers: []transport.Header{{Key: "h", Value: "v"}}}
	other := transport.Message{Topic: "out", Value: []byte("request-2")}
	got, err := e.pollCarrying(t, a, request, other)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), e.requests()-before, "one HTTP exchange: the fetch carried the produce")
	require.NoError(t, a.err)
	require.Len(t, a.written, 2)
	for i, m := range a.written {
		assert.Equal(t, "out", m.Topic)
		assert.Equal(t, int64(i), m.Offset)
		assert.False(t, m.Time.IsZero())
	}
	assert.Equal(t, "k", a.written[0].Key)
	require.Len(t, got, 1)
	assert.Equal(t, "reply-to-an-earlier-request", string(got[0].Value))
	assert.Equal(t, []string{"request-1", "request-2"}, e.outValues(t))

	// The position moved: the next carried poll reads only what follows.
	e.produceIn(t, "next")
	before = e.requests()
	a = newAck()
	got, err = e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("request-3")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	assert.Equal(t, uint64(1), e.requests()-before)
	require.Len(t, got, 1)
	assert.Equal(t, "next", string(got[0].Value))
}

// Until a /fetch answer has said the server takes records with a fetch,
// the records are produced on their own; the fetch that follows teaches
// the Transport.
func TestTailPollCarryingFirstProducesAlone(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.produceIn(t, "reply")
	before := e.requests()
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("request")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(2), e.requests()-before, "a produce, then a fetch")
	assert.Equal(t, fetchCarryYes, e.tr.fetchCarry.Load())
}

// The produce's outcome comes before the records: acked is called while
// the fetch still waits.
func TestTailPollCarryingAcksBeforeRecords(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.learn(t, true)
	a := newAck()
	type result struct {
		msgs []transport.Message
		err  error
	}
	res := make(chan result, 1)
	go func() {
		msgs, err := e.cp.PollCarrying(t.Context(), []transport.Message{{Topic: "out", Value: []byte("request")}}, a.fn)
		res <- result{msgs, err}
	}()
	a.wait(t)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	select {
	case r := <-res:
		t.Fatalf("PollCarrying returned %v, %v before any record was there", r.msgs, r.err)
	default:
	}
	e.produceIn(t, "late")
	select {
	case r := <-res:
		require.NoError(t, r.err)
		require.Len(t, r.msgs, 1)
		assert.Equal(t, "late", string(r.msgs[0].Value))
	case <-time.After(10 * time.Second):
		t.Fatal("PollCarrying did not return the record")
	}
	assert.Equal(t, []string{"request"}, e.outValues(t))
}

// A refused produce: acked and PollCarrying get Produce's error, and
// nothing is written or read.
func TestTailPollCarryingRefusedProduceReadsNothing(t *testing.T) {
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		server: []restserver.Option{restserver.WithMaxMessageBytes(64)},
	})
	tr := newTestTransport(t, s.URL)
	tail, err := tr.Tail(t.Context(), "in")
	require.NoError(t, err)
	defer tail.Close()
	e := &tailCarryEnv{s: s, tr: tr, tail: tail, cp: tail.(transport.CarryingPoller)}
	e.learn(t, true)
	e.produceIn(t, "reply")
	for _, c := range []struct {
		name string
		msg  transport.Message
		want error
	}{
		{"unknown topic", transport.Message{Topic: "nope", Value: []byte("x")}, transport.ErrUnknownTopic},
		{"too large", transport.Message{Topic: "out", Value: bytes.Repeat([]byte("x"), 65)}, transport.ErrMessageTooLarge},
		{"past the last partition", transport.Message{Topic: "out", Partition: 1, ManualPartition: true, Value: []byte("x")}, transport.ErrInvalid},
		{"invalid", transport.Message{Value: []byte("no topic")}, transport.ErrInvalid},
		{"not UTF-8", transport.Message{Topic: "out", Value: []byte{0xff}}, transport.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.requests()
			a := newAck()
			got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("ok")}, c.msg)
			require.ErrorIs(t, err, c.want)
			require.ErrorIs(t, a.err, c.want)
			assert.Nil(t, a.written)
			assert.Empty(t, got)
			// Refused by the server: the carried fetch, then the produce
			// on its own that learns the error; by the client: nothing.
			assert.LessOrEqual(t, e.requests()-before, uint64(2))
		})
	}
	got, err := e.tail.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1, "the refused calls read nothing")
	assert.Equal(t, "reply", string(got[0].Value))
	assert.Empty(t, e.outValues(t), "nothing of the refused produces was written")
}

// The user may read "in" but not produce to "out": 403 for the produce,
// nothing read.
func TestTailPollCarryingPermissionDenied(t *testing.T) {
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		server: []restserver.Option{restserver.WithUsers(
			restserver.User{Name: "r", Password: "p", Consume: []restserver.TopicPattern{"in"}, Produce: []restserver.TopicPattern{"in"}})},
	})
	tr := newTestTransport(t, s.URL, WithCredentials("r", "p"))
	tail, err := tr.Tail(t.Context(), "in")
	require.NoError(t, err)
	defer tail.Close()
	e := &tailCarryEnv{s: s, tr: tr, tail: tail, cp: tail.(transport.CarryingPoller)}
	e.learn(t, true)
	e.produceIn(t, "reply")
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("x")})
	require.ErrorIs(t, err, transport.ErrPermissionDenied)
	require.ErrorIs(t, a.err, transport.ErrPermissionDenied)
	assert.Empty(t, got)
	got, err = tail.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)
}

// A server that does not say Kafka-Carry on /fetch never gets records
// with a fetch: each PollCarrying is a produce, then a fetch, and nothing
// is lost.
func TestTailPollCarryingWithoutTheExtensionProducesAlone(t *testing.T) {
	e := newTailCarryEnv(t, withoutCarry, nil)
	e.learn(t, false)
	assert.Equal(t, fetchCarryUnknown, e.tr.fetchCarry.Load())
	for i, v := range []string{"request-1", "request-2"} {
		e.produceIn(t, "reply")
		before := e.requests()
		a := newAck()
		got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte(v)})
		require.NoError(t, err)
		require.NoError(t, a.err)
		require.Len(t, a.written, 1)
		assert.Equal(t, int64(i), a.written[0].Offset)
		require.Len(t, got, 1)
		assert.Equal(t, uint64(2), e.requests()-before, "a produce, then a fetch")
	}
	assert.Equal(t, []string{"request-1", "request-2"}, e.outValues(t))
}

// ignoresFetchCarry advertises the extension but drops the field of
// /fetch bodies and never says it wrote anything: the client must notice,
// produce the records itself and stop carrying.
func ignoresFetchCarry(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/fetch" {
			body, _ := io.ReadAll(r.Body)
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil {
				delete(m, "produce")
				body, _ = json.Marshal(m)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		h.ServeHTTP(w, r)
	})
}

func TestTailPollCarryingServerIgnoringTheFieldFallsBack(t *testing.T) {
	e := newTailCarryEnv(t, ignoresFetchCarry, nil)
	e.learn(t, true)
	e.produceIn(t, "reply-1")
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("request-1")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	require.Len(t, got, 1, "the records the fetch returned are not lost")
	assert.Equal(t, "reply-1", string(got[0].Value))
	assert.Equal(t, fetchCarryNo, e.tr.fetchCarry.Load())

	e.learn(t, true) // another answer saying Kafka-Carry changes nothing
	e.produceIn(t, "reply-2")
	before := e.requests()
	a = newAck()
	got, err = e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("request-2")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, got, 1)
	assert.Equal(t, "reply-2", string(got[0].Value))
	assert.Equal(t, uint64(2), e.requests()-before, "no longer carried: a produce, then a fetch")
	assert.Equal(t, []string{"request-1", "request-2"}, e.outValues(t), "each written once")
}

// While another Poll of the tail waits, the records are not held back
// behind it: they are produced at once, and the poll part waits its turn.
func TestTailPollCarryingBesideAWaitingPoll(t *testing.T) {
	e := newTailCarryEnv(t, nil, []Option{WithPollWindow(time.Second)})
	e.learn(t, true)
	before := e.requests()
	waiting := make(chan []transport.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		got, _ := e.tail.Poll(ctx) // holds the tail until a record comes
		waiting <- got
	}()
	// Once the Poll's fetch is in flight (the server counts its request),
	// a carried poll cannot ride on it.
	require.Eventually(t, func() bool { return e.s.REST.Stats().Requests > before }, 10*time.Second, time.Millisecond)
	a := newAck()
	type result struct {
		msgs []transport.Message
		err  error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		msgs, err := e.cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("request")}}, a.fn)
		res <- result{msgs, err}
	}()
	a.wait(t) // while the other Poll still waits
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	assert.Equal(t, []string{"request"}, e.outValues(t))
	e.produceIn(t, "reply")
	var got []transport.Message
	select {
	case got = <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting Poll did not return")
	}
	select {
	case r := <-res:
		require.NoError(t, r.err)
		got = append(got, r.msgs...)
	case <-time.After(10 * time.Second):
		t.Fatal("PollCarrying did not return")
	}
	for len(got) == 0 { // both windows ended first (a slow machine)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		more, err := e.tail.Poll(ctx)
		cancel()
		require.NoError(t, err)
		got = append(got, more...)
	}
	require.Len(t, got, 1, "the reply, once")
	assert.Equal(t, "reply", string(got[0].Value))
}

// A tail of several topics fetches each on its own: the records are
// produced, then polled.
func TestTailPollCarryingSeveralTopicsProducesAlone(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil, "in", "out")
	e.learn(t, true)
	e.produceIn(t, "reply")
	before := e.requests()
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("request")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	// The produce, then one fetch per topic; each topic's record comes
	// with this poll or the next.
	assert.GreaterOrEqual(t, e.requests()-before, uint64(2))
	values := []string{}
	for _, m := range got {
		values = append(values, string(m.Value))
	}
	for len(values) < 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		more, err := e.tail.Poll(ctx)
		cancel()
		require.NoError(t, err)
		for _, m := range more {
			values = append(values, string(m.Value))
		}
	}
	assert.ElementsMatch(t, []string{"reply", "request"}, values)
}

// A context that ends while the carried fetch waits (after the records'
// answer): acked has the records written, PollCarrying returns the
// context's error and loses nothing.
func TestTailPollCarryingContextEndsDuringTheWait(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.learn(t, true)
	ctx, cancel := context.WithCancel(t.Context())
	a := &ack{done: make(chan struct{})}
	acked := func(w []transport.Message, err error) {
		a.fn(w, err)
		cancel() // the caller gives up as soon as its request is written
	}
	got, err := e.cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("request")}}, acked)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, got)
	require.Equal(t, int32(1), a.calls.Load())
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)

	e.produceIn(t, "reply")
	got, err = e.tail.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "reply", string(got[0].Value))
	assert.Equal(t, []string{"request"}, e.outValues(t))
}

// Close during a carried fetch's wait: acked has the records written,
// PollCarrying returns ErrClosed; after Close nothing is produced.
func TestTailPollCarryingClose(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.learn(t, true)
	a := newAck()
	res := make(chan error, 1)
	go func() {
		_, err := e.cp.PollCarrying(t.Context(), []transport.Message{{Topic: "out", Value: []byte("request")}}, a.fn)
		res <- err
	}()
	a.wait(t)
	require.NoError(t, a.err)
	require.NoError(t, e.tail.Close())
	select {
	case err := <-res:
		require.ErrorIs(t, err, transport.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("PollCarrying did not return after Close")
	}

	a = newAck()
	_, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("after close")})
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, a.err, transport.ErrClosed)
	assert.Equal(t, []string{"request"}, e.outValues(t))
}

// A context that ended before the call produces nothing.
func TestTailPollCarryingEndedContext(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.learn(t, true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a := newAck()
	_, err := e.cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("x")}}, a.fn)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, a.err, context.Canceled)
	assert.Empty(t, e.outValues(t))
}

func TestTailPollCarryingNothing(t *testing.T) {
	e := newTailCarryEnv(t, nil, nil)
	e.learn(t, true)
	e.produceIn(t, "reply")
	a := newAck()
	got, err := e.pollCarrying(t, a)
	require.NoError(t, err)
	require.NoError(t, a.err)
	assert.Empty(t, a.written)
	require.Len(t, got, 1)
}

// A Kafka-Produced header that cannot be true of what was sent (here: no
// result for one record) is an unknown outcome: the server did write
// something, so the records are not produced again.
func TestTailPollCarryingUnbelievableAnswerIsOutcomeUnknown(t *testing.T) {
	var produces atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(restserver.CarryHeader, restserver.CarryValue)
		switch {
		case r.URL.Path == "/topics":
			_, _ = w.Write([]byte(`{"in":1}`))
		case r.URL.Path == "/offsets/latest":
			_, _ = w.Write([]byte(`[{"topic":"in","partition":0,"offset":0}]`))
		case r.URL.Path == "/produce":
			produces.Add(1)
			_, _ = w.Write([]byte(`[{"topic":"out","partition":0,"offset":0,"timestamp":1}]`))
		case bytes.Contains(body, []byte(`"produce"`)):
			w.Header().Set(restserver.ProducedHeader, `[]`)
			_, _ = w.Write([]byte(`[]`))
		default:
			_, _ = w.Write([]byte(`[]`))
		}
	}))
	defer hs.Close()
	tr := newTestTransport(t, hs.URL, WithPollWindow(50*time.Millisecond))
	tail, err := tr.Tail(t.Context(), "in")
	require.NoError(t, err)
	defer tail.Close()
	_, err = tail.Poll(t.Context())
	require.NoError(t, err)
	a := newAck()
	_, err = tail.(transport.CarryingPoller).PollCarrying(t.Context(), []transport.Message{{Topic: "out", Value: []byte("x")}}, a.fn)
	require.NoError(t, err, "the fetch part went on")
	require.Equal(t, int32(1), a.calls.Load())
	require.ErrorIs(t, a.err, transport.ErrOutcomeUnknown)
	assert.Zero(t, produces.Load(), "not produced again")
}
