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

// carryEnv is a REST server with topics "in" and "out" (one partition,
// no auto-creation) and a consumer of "in", from the earliest offset, of
// a fresh Transport. requests counts the HTTP requests the server got.
type carryEnv struct {
	s    *restServer
	tr   *Transport
	cons transport.Consumer
	cp   transport.CarryingPoller
	url  string
}

// newCarryEnv starts the server; wrap, when not nil, stands in front of it
// (a server without the extension, say).
func newCarryEnv(t *testing.T, wrap func(http.Handler) http.Handler, server ...restserver.Option) *carryEnv {
	t.Helper()
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		server: server,
	})
	url := s.URL
	if wrap != nil {
		hs := httptest.NewServer(wrap(s.REST))
		t.Cleanup(hs.Close)
		url = hs.URL
	}
	tr := newTestTransport(t, url)
	cons, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"in"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cons.Close() })
	cp, ok := cons.(transport.CarryingPoller)
	require.True(t, ok, "the upstash consumer implements transport.CarryingPoller")
	return &carryEnv{s: s, tr: tr, cons: cons, cp: cp, url: url}
}

// ack records the one call of a PollCarrying's acked.
type ack struct {
	calls   atomic.Int32
	written []transport.Message
	err     error
	done    chan struct{}
}

func newAck() *ack { return &ack{done: make(chan struct{})} }

func (a *ack) fn(written []transport.Message, err error) {
	if a.calls.Add(1) == 1 {
		a.written, a.err = written, err
		close(a.done)
	}
}

func (a *ack) wait(t *testing.T) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("acked was not called")
	}
}

func (e *carryEnv) requests() uint64 { return e.s.REST.Stats().Requests }

// pollCarrying calls PollCarrying with a bounded context and requires
// acked to have been called exactly once by the time it returns.
func (e *carryEnv) pollCarrying(t *testing.T, a *ack, msgs ...transport.Message) ([]transport.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := e.cp.PollCarrying(ctx, msgs, a.fn)
	require.Equal(t, int32(1), a.calls.Load(), "acked is called once, before PollCarrying returns")
	return got, err
}

func (e *carryEnv) produceIn(t *testing.T, v string) {
	t.Helper()
	_, err := e.tr.Produce(t.Context(), transport.Message{Topic: "in", Value: []byte(v)})
	require.NoError(t, err)
}

// outValues reads every record of "out".
func (e *carryEnv) outValues(t *testing.T) []string {
	t.Helper()
	c, err := e.tr.Subscribe(t.Context(), transport.Subscription{Group: "reader", Topics: []string{"out"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer c.Close()
	var out []string
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		msgs, _ := c.Poll(ctx)
		cancel()
		for _, m := range msgs {
			out = append(out, string(m.Value))
		}
	}
	return out
}

func TestPollCarryingRidesOnTheConsume(t *testing.T) {
	e := newCarryEnv(t, nil)
	e.produceIn(t, "request-1")
	got, err := e.cons.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)

	e.produceIn(t, "request-2")
	before := e.requests()
	a := newAck()
	reply := transport.Message{Topic: "out", Key: "k", Value: []byte("reply-1"), Headers: []transport.Header{{Key: "h", Value: "v"}}}
	marker := transport.Message{Topic: "out", Value: []byte("marker-1")}
	got, err = e.pollCarrying(t, a, reply, marker)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), e.requests()-before, "one HTTP exchange: the consume carried the produce")
	require.NoError(t, a.err)
	require.Len(t, a.written, 2)
	for i, m := range a.written {
		assert.Equal(t, "out", m.Topic)
		assert.Equal(t, int64(i), m.Offset)
		assert.False(t, m.Time.IsZero())
	}
	assert.Equal(t, "k", a.written[0].Key)
	require.Len(t, got, 1)
	assert.Equal(t, "request-2", string(got[0].Value))
	assert.Equal(t, []string{"reply-1", "marker-1"}, e.outValues(t))
}

// The produce's outcome comes before the records: acked is called while
// the consume still waits.
func TestPollCarryingAcksBeforeRecords(t *testing.T) {
	e := newCarryEnv(t, nil)
	a := newAck()
	type result struct {
		msgs []transport.Message
		err  error
	}
	res := make(chan result, 1)
	go func() {
		msgs, err := e.cp.PollCarrying(t.Context(), []transport.Message{{Topic: "out", Value: []byte("reply")}}, a.fn)
		res <- result{msgs, err}
	}()
	a.wait(t)
	require.NoError(t, a.err)
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
}

// A refused produce: acked and PollCarrying get Produce's error, and
// nothing is written or consumed.
func TestPollCarryingRefusedProduceConsumesNothing(t *testing.T) {
	e := newCarryEnv(t, nil, restserver.WithMaxMessageBytes(64))
	e.produceIn(t, "request")
	for _, c := range []struct {
		name string
		msg  transport.Message
		want error
	}{
		{"unknown topic", transport.Message{Topic: "nope", Value: []byte("x")}, transport.ErrUnknownTopic},
		{"too large", transport.Message{Topic: "out", Value: bytes.Repeat([]byte("x"), 65)}, transport.ErrMessageTooLarge},
		{"invalid", transport.Message{Value: []byte("no topic")}, transport.ErrInvalid},
		{"not UTF-8", transport.Message{Topic: "out", Value: []byte{0xff}}, transport.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newAck()
			got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("ok")}, c.msg)
			require.ErrorIs(t, err, c.want)
			require.ErrorIs(t, a.err, c.want)
			assert.Nil(t, a.written)
			assert.Empty(t, got)
		})
	}
	got, err := e.cons.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1, "the refused calls consumed nothing")
	assert.Equal(t, "request", string(got[0].Value))
	assert.Empty(t, e.outValues(t), "nothing of the refused produces was written")
}

// The user may consume "in" but not produce to "out": 403 for the
// produce, nothing consumed.
func TestPollCarryingPermissionDenied(t *testing.T) {
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		server: []restserver.Option{restserver.WithUsers(
			restserver.User{Name: "r", Password: "p", Consume: []restserver.TopicPattern{"in"}, Produce: []restserver.TopicPattern{"in"}})},
	})
	tr := newTestTransport(t, s.URL, WithCredentials("r", "p"))
	_, err := tr.Produce(t.Context(), transport.Message{Topic: "in", Value: []byte("request")})
	require.NoError(t, err)
	cons, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"in"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer cons.Close()
	a := newAck()
	got, err := cons.(transport.CarryingPoller).PollCarrying(t.Context(), []transport.Message{{Topic: "out", Value: []byte("x")}}, a.fn)
	require.ErrorIs(t, err, transport.ErrPermissionDenied)
	require.ErrorIs(t, a.err, transport.ErrPermissionDenied)
	assert.Empty(t, got)
	got, err = cons.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)
}

// withoutCarry stands for a server without the extension: it does not
// advertise it and ignores the field (as encoding/json does).
func withoutCarry(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(stripCarry{w}, r)
	})
}

type stripCarry struct{ http.ResponseWriter }

func (s stripCarry) WriteHeader(code int) {
	s.Header().Del(restserver.CarryHeader)
	s.ResponseWriter.WriteHeader(code)
}

func (s stripCarry) Write(b []byte) (int, error) {
	s.Header().Del(restserver.CarryHeader)
	return s.ResponseWriter.Write(b)
}

func TestPollCarryingWithoutTheExtensionProducesAlone(t *testing.T) {
	e := newCarryEnv(t, withoutCarry)
	e.produceIn(t, "request")
	before := e.requests()
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("reply")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(2), e.requests()-before, "a produce, then a consume")
	assert.Equal(t, []string{"reply"}, e.outValues(t))
}

// ignoresCarry advertises the extension but drops the field and never says
// it wrote anything: the client must notice, produce the records itself and
// stop carrying.
func ignoresCarry(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && len(r.URL.Path) > 9 && r.URL.Path[:9] == "/consume/" {
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

func TestPollCarryingServerIgnoringTheFieldFallsBack(t *testing.T) {
	e := newCarryEnv(t, ignoresCarry)
	e.produceIn(t, "request-1")
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("reply-1")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	require.Len(t, got, 1, "the records the consume returned are not lost")

	e.produceIn(t, "request-2")
	before := e.requests()
	a = newAck()
	got, err = e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("reply-2")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, got, 1)
	assert.Equal(t, uint64(2), e.requests()-before, "no longer carried: a produce, then a consume")
	assert.Equal(t, []string{"reply-1", "reply-2"}, e.outValues(t), "each written once")
}

func TestPollCarryingAfterClose(t *testing.T) {
	e := newCarryEnv(t, nil)
	require.NoError(t, e.cons.Close())
	a := newAck()
	_, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("reply")})
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, a.err, transport.ErrClosed)
	assert.Empty(t, e.outValues(t))
}

func TestPollCarryingNothing(t *testing.T) {
	e := newCarryEnv(t, nil)
	e.produceIn(t, "request")
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
func TestPollCarryingUnbelievableAnswerIsOutcomeUnknown(t *testing.T) {
	var produces atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/produce":
			produces.Add(1)
			_, _ = w.Write([]byte(`[{"topic":"out","partition":0,"offset":0,"timestamp":1}]`))
		case bytes.Contains(body, []byte(`"produce"`)):
			w.Header().Set(restserver.CarryHeader, restserver.CarryValue)
			w.Header().Set(restserver.ProducedHeader, `[]`)
			_, _ = w.Write([]byte(`[]`))
		default:
			w.Header().Set(restserver.CarryHeader, restserver.CarryValue)
			_, _ = w.Write([]byte(`[]`))
		}
	}))
	defer hs.Close()
	tr := newTestTransport(t, hs.URL, WithPollWindow(50*time.Millisecond))
	cons, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"in"}})
	require.NoError(t, err)
	defer cons.Close()
	a := newAck()
	_, _ = cons.(transport.CarryingPoller).PollCarrying(t.Context(), []transport.Message{{Topic: "out", Value: []byte("x")}}, a.fn)
	a.wait(t)
	require.ErrorIs(t, a.err, transport.ErrOutcomeUnknown)
	assert.Zero(t, produces.Load(), "not produced again")
}

// A Commit waiting when a consume starts rides on it: the consume commits,
// and the Commit learns the outcome from its headers.
func TestCommitRidesOnConsume(t *testing.T) {
	e := newCarryEnv(t, nil)
	e.produceIn(t, "request")
	got, err := e.cons.Poll(t.Context())
	require.NoError(t, err)
	require.Len(t, got, 1)
	c := e.cons.(*consumer)

	for _, tc := range []struct {
		name    string
		offsets string
		want    error
		at      int64
	}{
		{"owned", `[{"topic":"in","partition":0,"offset":1}]`, nil, 1},
		{"not owned", `[{"topic":"out","partition":0,"offset":1}]`, transport.ErrNotAssigned, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ride := &commitRide{offsets: []byte(tc.offsets), done: make(chan struct{})}
			c.mu.Lock()
			c.ride = ride // as a waiting Commit leaves it
			c.mu.Unlock()
			// The next consume carries it (a Poll may first take the
			// answer of one still in flight).
			deadline := time.Now().Add(10 * time.Second)
			for !isDone(ride.done) && time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				_, _ = e.cons.Poll(ctx)
				cancel()
			}
			require.True(t, isDone(ride.done), "no consume answered the commit")
			assert.False(t, ride.alone, "committed by the consume, not left to go alone")
			if tc.want == nil {
				require.NoError(t, ride.err)
			} else {
				require.ErrorIs(t, ride.err, tc.want)
			}
			off, err := e.s.Broker.Committed("g", "in", 0)
			require.NoError(t, err)
			assert.Equal(t, tc.at, off)
		})
	}
}

// A Commit with no consume to ride on goes alone after a short wait.
func TestCommitWithoutConsumeGoesAlone(t *testing.T) {
	e := newCarryEnv(t, nil)
	e.produceIn(t, "request")
	got, err := e.cons.Poll(t.Context())
	require.NoError(t, err)
	require.True(t, e.cons.(*consumer).carries.Load(), "the server said it takes commits with consumes")
	before := e.requests()
	require.NoError(t, e.cons.Commit(t.Context(), got...))
	assert.Equal(t, uint64(1), e.requests()-before)
	off, err := e.s.Broker.Committed("g", "in", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), off)
	// Refused alone as before.
	err = e.cons.Commit(t.Context(), transport.Message{Topic: "out", Partition: 0, Offset: 0})
	require.ErrorIs(t, err, transport.ErrNotAssigned)
}

// Concurrent Commits and Polls, for the race detector: every commit lands,
// riding or alone.
func TestCommitRidingConcurrent(t *testing.T) {
	e := newCarryEnv(t, nil)
	const n = 50
	for i := range n {
		e.produceIn(t, "r"+string(rune('a'+i%26)))
	}
	var last transport.Message
	seen := 0
	for seen < n {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		done := make(chan error, 1)
		go func() {
			if seen > 0 {
				done <- e.cons.Commit(ctx, last)
				return
			}
			done <- nil
		}()
		got, err := e.cons.Poll(ctx)
		require.NoError(t, err)
		require.NoError(t, <-done)
		cancel()
		if len(got) > 0 {
			last = got[len(got)-1]
			seen += len(got)
		}
	}
	require.NoError(t, e.cons.Commit(t.Context(), last))
	off, err := e.s.Broker.Committed("g", "in", 0)
	require.NoError(t, err)
	assert.Equal(t, last.Offset+1, off)
}

// With a Poll's consume still in flight (its caller gave up), the records
// cannot ride on it: they are produced alone, and the answer in flight is
// returned, as Poll returns it.
func TestPollCarryingWhileAConsumeIsInFlight(t *testing.T) {
	e := newCarryEnv(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel) // the consume (a long poll) is on its way by then
	_, err := e.cons.Poll(ctx)
	require.ErrorIs(t, err, context.Canceled)
	c := e.cons.(*consumer)
	c.mu.Lock()
	inflight := c.inflight != nil
	c.mu.Unlock()
	require.True(t, inflight, "the canceled Poll's consume is still in flight")
	e.produceIn(t, "request")
	a := newAck()
	got, err := e.pollCarrying(t, a, transport.Message{Topic: "out", Value: []byte("reply")})
	require.NoError(t, err)
	require.NoError(t, a.err)
	require.Len(t, a.written, 1)
	if len(got) == 0 { // the consume in flight ended empty
		got, err = e.cons.Poll(t.Context())
		require.NoError(t, err)
	}
	require.Len(t, got, 1)
	assert.Equal(t, []string{"reply"}, e.outValues(t))
}
