package upstash

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// restServer is the project's REST server over an embedded broker, serving
// on a loopback port.
type restServer struct{ *resttest.Server }

type serverConfig struct {
	broker []memory.Option
	server []restserver.Option
	faults *resttest.Faults
	// serve serves with the REST server's own Serve, as kafka-rest does,
	// instead of an httptest.Server (see resttest.Config.Serve).
	serve bool
}

// debugLog, when UPSTASH_DEBUG_LOG names a file, receives the servers' debug
// logs (every request with its status and duration, instance lifecycles):
// a diagnostic aid for a failing case, off by default.
var debugLog = func() io.Writer {
	if os.Getenv("UPSTASH_DEBUG_LOG") == "" {
		return nil
	}
	f, err := os.Create(os.Getenv("UPSTASH_DEBUG_LOG"))
	if err != nil {
		panic(err)
	}
	return f
}()

// startServer starts a REST server on 127.0.0.1 and stops it when tb ends
// (after the transports made later, as cleanups run last-in first-out).
func startServer(tb testing.TB, cfg serverConfig) *restServer {
	tb.Helper()
	var opts []restserver.Option
	if debugLog != nil {
		opts = append(opts, restserver.WithLogger(slog.New(slog.NewTextHandler(debugLog, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	return &restServer{resttest.Start(tb, resttest.Config{
		Broker: cfg.broker, Server: append(opts, cfg.server...), Faults: cfg.faults, Serve: cfg.serve,
	})}
}

// get makes a raw request to the server, as a test's own eyes.
func (s *restServer) get(tb testing.TB, method, path, body string, out any) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), method, s.URL+path, strings.NewReader(body))
	require.NoError(tb, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	require.Equal(tb, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, data)
	require.NoError(tb, json.Unmarshal(data, out))
}

type groupAssignments struct {
	Name      string `json:"name"`
	Instances []struct {
		Name string `json:"name"`
	} `json:"instances"`
}

// instances returns "group/instance" of every instance the server knows.
func (s *restServer) instances(tb testing.TB) []string {
	var groups []groupAssignments
	s.get(tb, http.MethodGet, "/consumers", "", &groups)
	var out []string
	for _, g := range groups {
		for _, in := range g.Instances {
			out = append(out, g.Name+"/"+in.Name)
		}
	}
	return out
}

func pollN(tb testing.TB, c transport.Consumer, n int) []transport.Message {
	tb.Helper()
	var got []transport.Message
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		require.True(tb, time.Now().Before(deadline), "polled %d of %d records", len(got), n)
		ctx, cancel := context.WithTimeout(tb.Context(), 500*time.Millisecond)
		msgs, err := c.Poll(ctx)
		cancel()
		if err != nil {
			require.ErrorIs(tb, err, context.DeadlineExceeded)
		}
		got = append(got, msgs...)
	}
	return got
}

func TestRoundTripAndCommit(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(3)}})
	tr := newTestTransport(t, s.URL)
	ctx := t.Context()

	sub := transport.Subscription{Group: "g", Instance: "i1", Topics: []string{"orders"}, Start: transport.StartEarliest}
	c, err := tr.Subscribe(ctx, sub)
	require.NoError(t, err)
	in := []transport.Message{
		{Topic: "orders", Key: "a", Value: []byte(`{"n":1}`), Headers: []transport.Header{{Key: "rpc-id", Value: "x"}}},
		{Topic: "orders", Key: "b", Value: []byte("two")},
		{Topic: "orders", Partition: 2, ManualPartition: true, Value: []byte("three")},
	}
	out, err := tr.Produce(ctx, in...)
	require.NoError(t, err)
	require.Len(t, out, 3)
	assert.Equal(t, int32(2), out[2].Partition)

	got := pollN(t, c, 3)
	require.Len(t, got, 3)
	byValue := map[string]transport.Message{}
	for _, m := range got {
		byValue[string(m.Value)] = m
	}
	for _, p := range out {
		m := byValue[string(p.Value)]
		assert.Equal(t, p.Key, m.Key)
		assert.Equal(t, p.Partition, m.Partition)
		assert.Equal(t, p.Offset, m.Offset)
		assert.True(t, p.Time.Equal(m.Time))
		if len(p.Headers) > 0 {
			assert.Equal(t, p.Headers, m.Headers)
		}
	}

	require.NoError(t, c.Commit(ctx, got...))
	// §11: the client commits last offset + 1, the server stores it as given.
	var committed []restwire.TopicPartitionOffset
	s.get(t, http.MethodPost, "/committed/g/i1", fmt.Sprintf(`{"topic":"orders","partition":%d}`, out[2].Partition), &committed)
	require.Len(t, committed, 1)
	_, off := committed[0].Values()
	assert.Equal(t, out[2].Offset+1, off)
	require.NoError(t, c.Close())

	// A new member resumes after the committed records.
	c2, err := tr.Subscribe(ctx, sub)
	require.NoError(t, err)
	more, err := tr.Produce(ctx, transport.Message{Topic: "orders", Value: []byte("four")})
	require.NoError(t, err)
	got2 := pollN(t, c2, 1)
	require.Len(t, got2, 1)
	assert.Equal(t, more[0].Offset, got2[0].Offset)
	assert.Equal(t, "four", string(got2[0].Value))
}

// Many concurrent Produce calls share few HTTP requests.
func TestCoalescingAgainstServer(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(4)}})
	tr := newTestTransport(t, s.URL)
	const producers, each = 256, 4
	before := s.REST.Stats().Requests
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				out, err := tr.Produce(t.Context(), transport.Message{Topic: "load", Key: fmt.Sprint(p), Value: fmt.Appendf(nil, "%d-%d", p, i)})
				if err == nil && string(out[0].Value) != fmt.Sprintf("%d-%d", p, i) {
					err = fmt.Errorf("caller %d got someone else's record %q", p, out[0].Value)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requests := s.REST.Stats().Requests - before
	msgs := uint64(producers * each)
	assert.Equal(t, msgs, s.REST.Stats().Produced)
	t.Logf("%d messages from %d concurrent producers in %d HTTP requests (%.3f requests per message)",
		msgs, producers, requests, float64(requests)/float64(msgs))
	assert.Less(t, requests, msgs/4, "concurrent produces must be coalesced")
}

func TestTailSeesRecordsProducedRightAfter(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(3)}})
	tr := newTestTransport(t, s.URL)
	ctx := t.Context()
	_, err := tr.Produce(ctx, transport.Message{Topic: "replies", Value: []byte("before")})
	require.NoError(t, err)

	c, err := tr.Tail(ctx, "replies", "fresh") // "fresh" does not exist yet
	require.NoError(t, err)
	defer c.Close()
	assert.Contains(t, s.Broker.Topics(), "fresh", "Tail has the server create a topic it does not know")
	assert.Empty(t, s.instances(t), "the topic-creating instance is deleted")

	var want []transport.Message
	for p := range 3 {
		out, err := tr.Produce(ctx,
			transport.Message{Topic: "replies", Partition: int32(p), ManualPartition: true, Value: fmt.Appendf(nil, "r%d", p)},
			transport.Message{Topic: "fresh", Partition: int32(p), ManualPartition: true, Value: fmt.Appendf(nil, "f%d", p)})
		require.NoError(t, err)
		want = append(want, out...)
	}
	got := pollN(t, c, len(want))
	assert.ElementsMatch(t, values(want), values(got), "exactly the records produced after Tail")
	require.NoError(t, c.Commit(ctx, got...), "Commit is a no-op")

	ctx2, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	msgs, err := c.Poll(ctx2)
	if err != nil {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	assert.Empty(t, msgs, "nothing is delivered twice")

	require.NoError(t, c.Close())
	_, err = c.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed)
	require.NoError(t, c.Close())
}

func TestTailUnknownTopicWithoutAutoCreate(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("known", 1)}})
	tr := newTestTransport(t, s.URL)
	_, err := tr.Tail(t.Context(), "known", "unknown")
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	var he *Error
	require.ErrorAs(t, err, &he)
	assert.Equal(t, 404, he.Status)
	assert.Empty(t, s.instances(t))

	_, err = tr.Produce(t.Context(), transport.Message{Topic: "unknown", Value: []byte("v")})
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, err = tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"unknown"}})
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	assert.Empty(t, s.instances(t), "a failed Subscribe leaves no instance behind")
}

func TestCloseDeletesInstances(t *testing.T) {
	s := startServer(t, serverConfig{})
	tr, err := New(WithURL(s.URL), fastBackoff, WithGroup("workers"))
	require.NoError(t, err)
	ctx := t.Context()

	a, err := tr.Subscribe(ctx, transport.Subscription{Instance: "a", Topics: []string{"jobs"}})
	require.NoError(t, err)
	_, err = tr.Subscribe(ctx, transport.Subscription{Instance: "b", Topics: []string{"jobs"}})
	require.NoError(t, err)
	c, err := tr.Subscribe(ctx, transport.Subscription{Topics: []string{"jobs"}})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"workers/a", "workers/b", "workers/" + c.(*consumer).key.instance}, s.instances(t))
	assert.True(t, strings.HasPrefix(c.(*consumer).key.instance, "kafkarpc-"), "a generated instance id")

	require.NoError(t, a.Close())
	assert.NotContains(t, s.instances(t), "workers/a")
	require.NoError(t, a.Close(), "Close is idempotent")

	require.NoError(t, tr.Close())
	assert.Empty(t, s.instances(t), "Transport.Close deletes every instance it created")
	_, err = tr.Subscribe(ctx, transport.Subscription{Topics: []string{"jobs"}})
	require.ErrorIs(t, err, transport.ErrClosed)
}

func TestSubscribeSendsConfigHeaders(t *testing.T) {
	srv := newScripted(t, response{200, `[]`, nil})
	tr := newTestTransport(t, srv.URL)
	c, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g/1", Instance: "i 1", Topics: []string{"a", "b", "a"},
		Start: transport.StartEarliest, SessionTimeout: 1500 * time.Millisecond})
	require.NoError(t, err)
	// Request 0 deletes a stale instance of that name, request 1 consumes.
	assert.Equal(t, "POST /delete-consumer/g%2F1/i%201", srv.path(0))
	assert.Equal(t, "POST /consume/g%2F1/i%201", srv.path(1))
	h := srv.header(1)
	assert.Equal(t, "false", h.Get("Kafka-Enable-Auto-Commit"))
	assert.Equal(t, "earliest", h.Get("Kafka-Auto-Offset-Reset"))
	assert.Equal(t, "1500", h.Get("Kafka-Session-Timeout-Ms"))
	assert.JSONEq(t, `{"topics":["a","b"],"timeout":0}`, srv.body(1))

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	msgs, err := c.Poll(ctx)
	require.NoError(t, err)
	assert.NotNil(t, msgs)
	assert.Empty(t, msgs)
	var body restwire.ConsumeRequest
	require.NoError(t, json.Unmarshal([]byte(srv.body(2)), &body))
	require.NotNil(t, body.Timeout)
	assert.InDelta(t, 900, *body.Timeout, 100, "the server wait is a bit under the caller's remaining time")

	// The defaults: latest, no session timeout header.
	c2, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"a"}})
	require.NoError(t, err)
	defer c2.Close()
	h = srv.header(int(srv.requests.Load()) - 1)
	assert.Equal(t, "latest", h.Get("Kafka-Auto-Offset-Reset"))
	assert.Empty(t, h.Get("Kafka-Session-Timeout-Ms"))
}

func TestSubscribeRejectsInvalid(t *testing.T) {
	srv := newScripted(t, response{200, `[]`, nil})
	tr := newTestTransport(t, srv.URL)
	for name, s := range map[string]transport.Subscription{
		"NoGroup":         {Topics: []string{"t"}},
		"NoTopics":        {Group: "g"},
		"EmptyTopic":      {Group: "g", Topics: []string{""}},
		"BadStart":        {Group: "g", Topics: []string{"t"}, Start: 7},
		"NegativeSession": {Group: "g", Topics: []string{"t"}, SessionTimeout: -time.Second},
	} {
		_, err := tr.Subscribe(t.Context(), s)
		assert.ErrorIs(t, err, transport.ErrInvalid, name)
	}
	assert.Equal(t, int64(0), srv.requests.Load())
}

func TestAuth(t *testing.T) {
	s := startServer(t, serverConfig{server: []restserver.Option{restserver.WithCredentials("alice", "s3cret-pw")}})
	var logs logBuffer

	bad := newTestTransport(t, s.URL, WithCredentials("alice", "wrong-pw"), WithLogger(logs.logger()))
	before := s.REST.Stats().Requests
	_, err := bad.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	var he *Error
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusUnauthorized, he.Status)
	assert.Equal(t, "invalid credentials", he.Message)
	assert.Equal(t, uint64(1), s.REST.Stats().Requests-before, "a 401 is not retried")

	none := newTestTransport(t, s.URL)
	_, err = none.Tail(t.Context(), "t")
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusUnauthorized, he.Status)
	assert.Contains(t, he.Message, "missing credentials")

	good := newTestTransport(t, strings.Replace(s.URL, "http://", "http://alice:s3cret-pw@", 1), WithLogger(logs.logger()))
	_, err = good.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.NoError(t, err)
	c, err := good.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"t"}})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	assert.NotContains(t, good.URL(), "s3cret")
	assert.NotContains(t, logs.String(), "s3cret")
	assert.NotContains(t, logs.String(), "wrong-pw")
}

func TestTooLarge(t *testing.T) {
	s := startServer(t, serverConfig{server: []restserver.Option{restserver.WithMaxMessageBytes(1000)}})
	tr := newTestTransport(t, s.URL)
	_, err := tr.Produce(t.Context(),
		transport.Message{Topic: "t", Value: []byte("small")},
		transport.Message{Topic: "t", Value: bytes.Repeat([]byte("x"), 1001)})
	require.ErrorIs(t, err, transport.ErrMessageTooLarge)
	var he *Error
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusRequestEntityTooLarge, he.Status)
	assert.Empty(t, s.Broker.Topics(), "nothing was appended")
}

// A Poll whose context ends while its consume is in flight keeps the
// answer for the next Poll.
func TestPollKeepsAnswerAfterCancel(t *testing.T) {
	s := startServer(t, serverConfig{})
	tr := newTestTransport(t, s.URL)
	c, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"t"}})
	require.NoError(t, err)
	cc := c.(*consumer)

	ctx, cancel := context.WithCancel(t.Context())
	polled := make(chan error, 1)
	go func() {
		_, err := c.Poll(ctx)
		polled <- err
	}()
	require.Eventually(t, func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cc.inflight != nil
	}, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-polled, context.Canceled)

	out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("kept")})
	require.NoError(t, err)
	got := pollN(t, c, 1)
	assert.Equal(t, out[0].Offset, got[0].Offset)
}

func values(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}
