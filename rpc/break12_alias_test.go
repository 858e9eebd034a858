package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kafkarpc/kafkarpc/otelrpc"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// break12: the reply and its dedup marker share one header array (sized by
// replyRoom since 745d25b), and the delivery keeps only the reply address of
// its envelope (3809e53). These tests send raw request records (so that a
// reply partition can be pinned, a trace context carried, a legacy record
// sent) to a real Server on the embedded broker, read what it wrote to the
// reply topic, the dedup topic and the dead-letter topic, and hold them to
// the wire envelope (DESIGN.md) byte for byte: every header array size the
// entry comes in (6, 9, 11, all 13) is filled, with and without a
// persisted window and an Observer that gives the replies a trace context
// of its own, the server on the embedded broker or over REST (the real
// REST server on loopback, transport/upstash). A duplicate is then answered by the same server, and after a
// restart by a new member that learned the reply from the marker: both
// with the reply exactly as first sent.

const (
	b12Replies = "replies"
	b12Dedup   = "srv.handled"
	// b12TP is a caller's W3C trace context.
	b12TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// b12Case is one request the attack sends.
type b12Case struct {
	name    string
	topic   string // "jobs" (HandleFunc), "typed" (Handle[int]) or "legacy"
	payload string
	method  string
	pin     int    // reply partition pinned by the request, -1: none
	tp      string // the request's traceparent
	// what comes back
	code      rpc.Code // error reply's code, 0: success
	errPrefix string   // error reply's message starts so
	omitted   bool     // the reply is over the marker's limit
	progress  int      // progress notices the handler sends
	dlq       string   // the dead letter's reason, "" when none
	legacy    bool
}

func b12Cases() []b12Case {
	return []b12Case{
		{name: "ok", topic: "jobs", payload: `{"op":"ok"}`, method: "m1", pin: -1},
		{name: "ok traced", topic: "jobs", payload: `{"op":"ok"}`, pin: -1, tp: b12TP},
		{name: "ok pinned", topic: "jobs", payload: `{"op":"ok"}`, pin: 1},
		{name: "ok traced pinned", topic: "jobs", payload: `{"op":"ok"}`, pin: 0, tp: b12TP},
		{name: "error", topic: "jobs", payload: `{"op":"err"}`, pin: -1, code: rpc.CodeNotFound, errPrefix: "nope"},
		{name: "error traced", topic: "jobs", payload: `{"op":"err"}`, pin: -1, tp: b12TP, code: rpc.CodeNotFound, errPrefix: "nope"},
		{name: "error traced pinned", topic: "jobs", payload: `{"op":"err"}`, pin: 1, tp: b12TP, code: rpc.CodeNotFound, errPrefix: "nope"},
		{name: "large", topic: "jobs", payload: `{"op":"big"}`, pin: -1, omitted: true},
		{name: "large traced pinned", topic: "jobs", payload: `{"op":"big"}`, pin: 1, tp: b12TP, omitted: true},
		{name: "progress traced", topic: "jobs", payload: `{"op":"progress"}`, pin: -1, tp: b12TP, progress: 2},
		{name: "progress pinned", topic: "jobs", payload: `{"op":"progress"}`, pin: 1, progress: 2},
		{name: "dead letter traced pinned", topic: "typed", payload: `"not a number"`, pin: 1, tp: b12TP,
			code: rpc.CodeInvalidArgument, errPrefix: "decode typed request", dlq: "undecodable"},
		{name: "legacy", topic: "legacy", payload: `{"op":"ok"}`, pin: -1, legacy: true},
	}
}

// b12Seen is what a handler, a middleware and an Observer saw of a request.
type b12Seen struct {
	mu      sync.Mutex
	runs    map[string]int          // by rpc-id, or "legacy:<key>"
	handler map[string]rpc.Request  // RequestFrom in the handler
	mw      map[string]rpc.Request  // what the middleware got
	obs     map[string]*rpc.Request // HandleStarted's
	custom  map[string]string       // the x-custom header the handler read
}

func (s *b12Seen) key(r *rpc.Request) string {
	if r.Legacy {
		return "legacy:" + r.Key
	}
	return r.ID
}

// b12Observer records what HandleStarted is given, and lets the otelrpc
// Observer do the rest.
type b12Observer struct {
	*otelrpc.Observer
	seen *b12Seen
}

func (o b12Observer) HandleStarted(ctx context.Context, r *rpc.Request) (context.Context, string, func(error)) {
	o.seen.mu.Lock()
	c := *r
	o.seen.obs[o.seen.key(r)] = &c
	o.seen.mu.Unlock()
	return o.Observer.HandleStarted(ctx, r)
}

// b12Rig is a broker, the server's handlers and what they saw.
type b12Rig struct {
	t        *testing.T
	b        *memory.Broker
	rest     string // the REST server's URL the server uses, "" for b
	seen     *b12Seen
	observed bool
	persist  bool
	late     chan struct{} // closed: the handlers' late Progress goes
	lateErrs chan error
	obs      rpc.Observer
}

func newB12Rig(t *testing.T, observed, persist, rest bool) *b12Rig {
	topics := []memory.Option{memory.WithTopic("jobs", 1), memory.WithTopic("typed", 1), memory.WithTopic("legacy", 1),
		memory.WithTopic(b12Replies, 2)}
	g := &b12Rig{
		t: t,
		seen: &b12Seen{runs: map[string]int{}, handler: map[string]rpc.Request{}, mw: map[string]rpc.Request{},
			obs: map[string]*rpc.Request{}, custom: map[string]string{}},
		observed: observed,
		persist:  persist,
		late:     make(chan struct{}),
		lateErrs: make(chan error, 16),
	}
	if rest {
		rs := resttest.Start(t, resttest.Config{Broker: topics})
		g.b, g.rest = rs.Broker, rs.URL
	} else {
		g.b = newBroker(t, topics...)
	}
	if observed {
		tp := sdktrace.NewTracerProvider()
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		o, err := otelrpc.New(otelrpc.WithTracerProvider(tp))
		require.NoError(t, err)
		g.obs = b12Observer{Observer: o, seen: g.seen}
	}
	return g
}

// serve starts a member of group srv; stop stops it.
func (g *b12Rig) serve() (stop func() error) {
	t := g.t
	opts := []rpc.ServerOption{rpc.WithName("srv"), silent, rpc.WithKeyOrdering(), rpc.WithRetry(1, time.Millisecond),
		rpc.WithMiddleware(func(next rpc.HandlerFunc) rpc.HandlerFunc {
			return func(ctx context.Context, r *rpc.Request) (any, error) {
				g.seen.mu.Lock()
				g.seen.mw[g.seen.key(r)] = *r
				g.seen.mu.Unlock()
				return next(ctx, r)
			}
		})}
	if !g.persist {
		opts = append(opts, rpc.WithDedupTopic(""))
	}
	if g.obs != nil {
		opts = append(opts, rpc.WithObserver(g.obs))
	}
	var tr transport.Transport = g.b
	if g.rest != "" {
		ut, err := upstash.New(upstash.WithURL(g.rest))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, ut.Close()) })
		tr = ut
	}
	s, err := rpc.NewServer(tr, opts...)
	require.NoError(t, err)
	record := func(ctx context.Context) {
		r, ok := rpc.RequestFrom(ctx)
		require.True(t, ok)
		g.seen.mu.Lock()
		defer g.seen.mu.Unlock()
		k := g.seen.key(r)
		g.seen.runs[k]++
		g.seen.handler[k] = *r
		g.seen.custom[k], _ = r.Header("x-custom")
	}
	h := func(ctx context.Context, r *rpc.Request) (any, error) {
		record(ctx)
		var op struct{ Op string }
		if err := json.Unmarshal(r.Value, &op); err != nil {
			return nil, err
		}
		switch op.Op {
		case "ok":
			return map[string]int{"n": 1}, nil
		case "err":
			return nil, rpc.Errorf(rpc.CodeNotFound, "nope").WithDetails(json.RawMessage(`{"why":"gone"}`))
		case "big":
			return strings.Repeat("x", 2000), nil
		case "progress":
			if err := rpc.Progress(ctx, "p1"); err != nil {
				return nil, err
			}
			// The second notice goes after the handler returned and its
			// reply was sent (the test says when).
			go func() {
				<-g.late
				g.lateErrs <- rpc.Progress(context.WithoutCancel(ctx), "p2")
			}()
			return "done", nil
		}
		return nil, fmt.Errorf("unknown op %q", op.Op)
	}
	s.HandleFunc("jobs", h)
	rpc.Handle(s, "typed", func(ctx context.Context, n int) (int, error) { record(ctx); return n, nil })
	s.HandleLegacy("k", "legacy", func(ctx context.Context, r *rpc.Request) (any, error) { record(ctx); return nil, nil })
	return rpctest.Serve(t, s)
}

// request is the raw request record of c with id.
func (g *b12Rig) request(c b12Case, id string) transport.Message {
	if c.legacy {
		return transport.Message{Topic: c.topic, Key: "k", Value: []byte(c.payload)}
	}
	hs := []transport.Header{
		{Key: rpc.HeaderVersion, Value: "1"}, {Key: rpc.HeaderID, Value: id}, {Key: rpc.HeaderKind, Value: "request"},
		{Key: rpc.HeaderFrom, Value: "raw"}, {Key: rpc.HeaderReplyTo, Value: b12Replies}, {Key: rpc.HeaderTimeoutMs, Value: "30000"},
		{Key: rpc.HeaderContentType, Value: "application/json"}, {Key: "x-custom", Value: "v-" + id},
	}
	if c.method != "" {
		hs = append(hs, transport.Header{Key: rpc.HeaderMethod, Value: c.method})
	}
	if c.pin >= 0 {
		hs = append(hs, transport.Header{Key: rpc.HeaderReplyPartition, Value: strconv.Itoa(c.pin)})
	}
	if c.tp != "" {
		hs = append(hs, transport.Header{Key: rpc.HeaderTraceparent, Value: c.tp})
	}
	return transport.Message{Topic: c.topic, Key: "k", Value: []byte(c.payload), Headers: hs}
}

func (g *b12Rig) produce(m transport.Message) {
	_, err := g.b.Produce(context.Background(), m)
	require.NoError(g.t, err)
}

// records returns every record of topic, all partitions.
func (g *b12Rig) records(topic string) []transport.Message {
	var all []transport.Message
	for p := int32(0); ; p++ {
		_, latest, err := g.b.Offsets(topic, p)
		if errors.Is(err, transport.ErrUnknownTopic) || errors.Is(err, transport.ErrInvalid) {
			return all
		}
		require.NoError(g.t, err)
		if latest == 0 {
			continue
		}
		ms, err := g.b.Fetch(context.Background(), topic, p, 0, 10000)
		require.NoError(g.t, err)
		all = append(all, ms...)
	}
}

// answers returns the records on the reply topic for id, of kind.
func (g *b12Rig) answers(id string, kind rpc.Kind) []transport.Message {
	var out []transport.Message
	for _, m := range g.records(b12Replies) {
		cid, _ := m.Header(rpc.HeaderCorrelationID)
		k, _ := m.Header(rpc.HeaderKind)
		if cid == id && k == string(kind) {
			out = append(out, m)
		}
	}
	return out
}

// awaitAnswers waits until n records of kind answer id.
func (g *b12Rig) awaitAnswers(id string, kind rpc.Kind, n int) []transport.Message {
	var got []transport.Message
	require.Eventually(g.t, func() bool {
		got = g.answers(id, kind)
		return len(got) >= n
	}, 10*time.Second, 2*time.Millisecond, "%d %s records for %s", n, kind, id)
	require.Len(g.t, got, n, "%s records for %s", kind, id)
	return got
}

// markers returns the dedup topic's records for id.
func (g *b12Rig) markers(id string) []transport.Message {
	var out []transport.Message
	for _, m := range g.records(b12Dedup) {
		if of, _ := m.Header("rpc-dedup-of"); of == id {
			out = append(out, m)
		}
	}
	return out
}

// checkAnswer holds m, a reply or progress notice to c's request id, to
// the wire envelope, and returns its traceparent.
func (g *b12Rig) checkAnswer(c b12Case, id string, kind rpc.Kind, m transport.Message) string {
	t := g.t
	t.Helper()
	rid, _ := m.Header(rpc.HeaderID)
	_, err := uuid.Parse(rid)
	require.NoError(t, err, "rpc-id of the %s is a UUID", kind)
	require.NotEqual(t, id, rid)
	want := []transport.Header{
		{Key: rpc.HeaderVersion, Value: "1"}, {Key: rpc.HeaderID, Value: rid}, {Key: rpc.HeaderKind, Value: string(kind)},
		{Key: rpc.HeaderFrom, Value: "srv"}, {Key: rpc.HeaderCorrelationID, Value: id}, {Key: rpc.HeaderContentType, Value: "application/json"},
	}
	tp, _ := m.Header(rpc.HeaderTraceparent)
	if g.observed {
		// The server's own span: in the caller's trace when it sent one.
		require.Len(t, tp, len(b12TP), "the Observer's trace context")
		if c.tp != "" {
			require.Equal(t, c.tp[:35], tp[:35], "same trace")
			require.NotEqual(t, c.tp, tp)
		}
	} else {
		require.Equal(t, c.tp, tp)
	}
	if tp != "" {
		want = append(want, transport.Header{Key: rpc.HeaderTraceparent, Value: tp})
	}
	if kind == rpc.KindReply && c.code != 0 {
		msg, _ := m.Header(rpc.HeaderError)
		require.True(t, strings.HasPrefix(msg, c.errPrefix), "error %q", msg)
		want = append(want, transport.Header{Key: rpc.HeaderErrorCode, Value: c.code.String()}, transport.Header{Key: rpc.HeaderError, Value: msg})
	}
	require.Equal(t, want, m.Headers, "%s headers", kind)
	require.Equal(t, id, m.Key)
	if c.pin >= 0 {
		require.Equal(t, int32(c.pin), m.Partition, "pinned reply partition")
	}
	return tp
}

// checkMarker holds the dedup record of c's request id to its reply.
func (g *b12Rig) checkMarker(c b12Case, id string, reply transport.Message) {
	t := g.t
	t.Helper()
	ms := g.markers(id)
	if !g.persist {
		require.Empty(t, ms)
		return
	}
	require.Len(t, ms, 1, "one marker for %s", id)
	m := ms[0]
	require.Equal(t, int32(0), m.Partition)
	require.Equal(t, id, m.Key)
	by, _ := m.Header("rpc-dedup-by")
	require.NotEmpty(t, by)
	if c.omitted {
		require.Equal(t, []transport.Header{{Key: "rpc-dedup-by", Value: by}, {Key: "rpc-dedup-of", Value: id},
			{Key: "rpc-dedup-reply-omitted", Value: strconv.Itoa(b12Size(reply))}}, m.Headers)
		require.Empty(t, m.Value)
		return
	}
	want := append(slices.Clone(reply.Headers), transport.Header{Key: "rpc-dedup-by", Value: by},
		transport.Header{Key: "rpc-dedup-of", Value: id}, transport.Header{Key: "rpc-dedup-reply-to", Value: b12Replies})
	if c.pin >= 0 {
		want = append(want, transport.Header{Key: "rpc-dedup-reply-partition", Value: strconv.Itoa(c.pin)})
	}
	require.Equal(t, want, m.Headers, "marker: the reply's headers, then the dedup ones")
	require.Equal(t, reply.Value, m.Value)
}

// b12Size is a record's key, value and header bytes (what the marker's
// omitted header counts).
func b12Size(m transport.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// sameRecord says b is a resend of a: key, partition, value and headers.
func (g *b12Rig) sameRecord(what string, a, b transport.Message) {
	g.t.Helper()
	require.Equal(g.t, a.Headers, b.Headers, "%s: headers", what)
	require.Equal(g.t, string(a.Value), string(b.Value), "%s: value", what)
	require.Equal(g.t, a.Key, b.Key, "%s: key", what)
	require.Equal(g.t, a.Partition, b.Partition, "%s: partition", what)
}

// checkSeen holds what the middleware, the handler and the Observer saw
// of c's request id to what it carried.
func (g *b12Rig) checkSeen(c b12Case, id string, sentAt time.Time) {
	t := g.t
	t.Helper()
	s := g.seen
	s.mu.Lock()
	defer s.mu.Unlock()
	k := id
	if c.legacy {
		k = "legacy:k"
	}
	hr, mr := s.handler[k], s.mw[k]
	seen := []rpc.Request{hr, mr}
	if c.dlq != "" {
		// Undecodable: Handle's function is never called.
		require.Zero(t, s.runs[k], "%s: not run", c.name)
		hr, seen = mr, seen[1:]
	} else {
		require.Equal(t, 1, s.runs[k], "%s ran once", c.name)
	}
	for _, r := range seen {
		require.Equal(t, c.topic, r.Topic)
		if c.legacy {
			require.True(t, r.Legacy)
			require.Equal(t, "k", r.From)
			require.Empty(t, r.ID)
			continue
		}
		require.Equal(t, id, r.ID)
		require.Equal(t, "raw", r.From)
		require.Equal(t, rpc.KindRequest, r.Kind)
		require.Equal(t, c.method, r.Method)
		require.False(t, r.Legacy)
		require.WithinRange(t, r.Deadline, sentAt.Add(29*time.Second), time.Now().Add(31*time.Second), "deadline from rpc-timeout-ms")
	}
	if !c.legacy && c.dlq == "" {
		require.Equal(t, "v-"+id, s.custom[k], "custom header")
	}
	if g.observed {
		or := s.obs[k]
		require.NotNil(t, or)
		require.Equal(t, hr.ID, or.ID)
		require.Equal(t, hr.Method, or.Method)
		require.Equal(t, hr.From, or.From)
		require.Equal(t, hr.Deadline, or.Deadline)
	}
}

// TestBreak12ReplyAndMarkerHeadersOnTheWire sends each case to a server,
// a duplicate of it to the same server, and, after a restart, another
// duplicate to a new member, and holds every record written to the wire
// envelope.
func TestBreak12ReplyAndMarkerHeadersOnTheWire(t *testing.T) {
	for _, rest := range []bool{false, true} {
		for _, observed := range []bool{false, true} {
			for _, persist := range []bool{true, false} {
				t.Run(fmt.Sprintf("rest=%v/observed=%v/persisted=%v", rest, observed, persist), func(t *testing.T) {
					b12Attack(t, observed, persist, rest)
				})
			}
		}
	}
}

func b12Attack(t *testing.T, observed, persist, rest bool) {
	g := newB12Rig(t, observed, persist, rest)
	stop := g.serve()
	cases := b12Cases()
	ids := make([]string, len(cases))
	sentAt := time.Now()
	for i, c := range cases {
		ids[i] = uuid.NewString()
		g.produce(g.request(c, ids[i]))
	}
	first := make([]transport.Message, len(cases))
	replyTP := make([]string, len(cases))
	for i, c := range cases {
		if c.legacy {
			continue
		}
		first[i] = g.awaitAnswers(ids[i], rpc.KindReply, 1)[0]
		replyTP[i] = g.checkAnswer(c, ids[i], rpc.KindReply, first[i])
		if c.omitted {
			require.Greater(t, b12Size(first[i]), 1024)
		}
		if c.code != 0 && c.dlq == "" {
			require.JSONEq(t, `{"why":"gone"}`, string(first[i].Value), "error details")
		}
	}
	// The handlers' Progress after their reply went.
	close(g.late)
	for _, c := range cases {
		for range c.progress - 1 {
			select {
			case err := <-g.lateErrs:
				require.NoError(t, err, "Progress after the handler returned")
			case <-time.After(10 * time.Second):
				t.Fatal("late Progress did not return")
			}
		}
	}
	for i, c := range cases {
		if c.progress == 0 {
			continue
		}
		ps := g.awaitAnswers(ids[i], rpc.KindProgress, c.progress)
		for j, p := range ps {
			tp := g.checkAnswer(c, ids[i], rpc.KindProgress, p)
			require.Equal(t, replyTP[i], tp, "progress and reply carry one trace context")
			require.Equal(t, fmt.Sprintf(`"p%d"`, j+1), string(p.Value))
		}
	}
	// The legacy record is settled once its offset is committed: no reply,
	// no marker, no dead letter.
	committedAt(t, g.b, "srv", "legacy", 0, 1)
	for i, c := range cases {
		g.checkSeen(c, ids[i], sentAt)
		if c.legacy {
			continue
		}
		g.checkMarker(c, ids[i], first[i])
	}
	g.checkDeadLetters(cases, ids, 1)

	// Duplicates, to the same server: the stored reply, as sent.
	for i, c := range cases {
		g.produce(g.request(c, ids[i]))
	}
	sentinel := b12Case{name: "sentinel", topic: "jobs", payload: `{"op":"ok"}`, pin: -1}
	sid := uuid.NewString()
	g.produce(g.request(sentinel, sid))
	g.awaitAnswers(sid, rpc.KindReply, 1)
	committedAt(t, g.b, "srv", "jobs", 0, int64(2*b12Count(cases, "jobs")+1))
	committedAt(t, g.b, "srv", "typed", 0, int64(2*b12Count(cases, "typed")))
	committedAt(t, g.b, "srv", "legacy", 0, 2)
	for i, c := range cases {
		if c.legacy {
			continue
		}
		again := g.awaitAnswers(ids[i], rpc.KindReply, 2)
		g.sameRecord(c.name+": resent by the same server", first[i], again[1])
		if c.progress > 0 {
			require.Len(t, g.answers(ids[i], rpc.KindProgress), c.progress, "no progress for a duplicate")
		}
	}
	g.checkDeadLetters(cases, ids, 1)
	require.NoError(t, stop())
	if !persist {
		return
	}

	// A new member learns the replies from the markers: a duplicate is
	// answered with the reply as first sent, or (omitted) not at all.
	stop = g.serve()
	defer func() { require.NoError(t, stop()) }()
	for i, c := range cases {
		if !c.legacy {
			g.produce(g.request(c, ids[i]))
		}
	}
	sid = uuid.NewString()
	g.produce(g.request(sentinel, sid))
	g.awaitAnswers(sid, rpc.KindReply, 1)
	committedAt(t, g.b, "srv", "typed", 0, int64(3*b12Count(cases, "typed")))
	for i, c := range cases {
		if c.legacy {
			continue
		}
		if c.omitted {
			require.Len(t, g.answers(ids[i], rpc.KindReply), 2, "%s: an omitted reply is not resent", c.name)
			continue
		}
		again := g.awaitAnswers(ids[i], rpc.KindReply, 3)
		g.sameRecord(c.name+": resent by a member that learned it from the marker", first[i], again[2])
	}
	g.seen.mu.Lock()
	for i, c := range cases {
		if !c.legacy && c.dlq == "" {
			require.Equal(t, 1, g.seen.runs[ids[i]], "%s ran once in all", c.name)
		}
	}
	g.seen.mu.Unlock()
	g.checkDeadLetters(cases, ids, 1)
	for i, c := range cases {
		if !c.legacy {
			require.Len(t, g.markers(ids[i]), 1, "%s: no second marker", c.name)
		}
	}
}

// b12Count is how many cases go to topic.
func b12Count(cases []b12Case, topic string) int {
	n := 0
	for _, c := range cases {
		if c.topic == topic {
			n++
		}
	}
	return n
}

// checkDeadLetters holds the dead-letter topics to the cases: n records
// for each case that has one, each the request as sent and the dlq
// headers, and none for the others.
func (g *b12Rig) checkDeadLetters(cases []b12Case, ids []string, n int) {
	t := g.t
	t.Helper()
	for i, c := range cases {
		var dl []transport.Message
		for _, m := range g.records(c.topic + rpc.DeadLetterSuffix) {
			if id, _ := m.Header(rpc.HeaderID); id == ids[i] {
				dl = append(dl, m)
			}
		}
		if c.dlq == "" {
			require.Empty(t, dl, "%s: no dead letter", c.name)
			continue
		}
		require.Len(t, dl, n, "%s: dead letters", c.name)
		m := dl[0]
		req := g.request(c, ids[i])
		require.Equal(t, req.Headers, m.Headers[:len(req.Headers)], "the request's own headers first")
		extra := m.Headers[len(req.Headers):]
		keys := make([]string, len(extra))
		for j, h := range extra {
			keys[j] = h.Key
		}
		require.Equal(t, []string{rpc.HeaderDLQReason, rpc.HeaderDLQCode, rpc.HeaderDLQError, rpc.HeaderDLQTopic,
			rpc.HeaderDLQPartition, rpc.HeaderDLQOffset, rpc.HeaderDLQTime}, keys)
		require.Equal(t, c.dlq, extra[0].Value)
		require.Equal(t, c.code.String(), extra[1].Value)
		require.True(t, strings.HasPrefix(extra[2].Value, c.errPrefix))
		require.Equal(t, c.topic, extra[3].Value)
		require.Equal(t, "0", extra[4].Value)
		require.Equal(t, req.Value, m.Value)
		require.Equal(t, req.Key, m.Key)
	}
}

// TestBreak12ProgressAfterReturnWhileDuplicatesResent: handlers return at
// once and leave goroutines sending progress notices through their
// context while the reply is settled, its marker written and duplicates
// of the request answered from the window; under -race nothing the
// notices read of the delivery (its reply address, the Observer's trace
// context) is written meanwhile, and every notice carries the envelope of
// its request and the trace context of its reply.
func TestBreak12ProgressAfterReturnWhileDuplicatesResent(t *testing.T) {
	const n, notices = 40, 5
	g := newB12Rig(t, true, true, false)
	var wg sync.WaitGroup
	defer wg.Wait()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	o, err := otelrpc.New(otelrpc.WithTracerProvider(tp))
	require.NoError(t, err)
	s, err := rpc.NewServer(g.b, rpc.WithName("srv"), silent, rpc.WithConcurrency(8), rpc.WithObserver(o))
	require.NoError(t, err)
	s.HandleFunc("jobs", func(ctx context.Context, r *rpc.Request) (any, error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range notices {
				if err := rpc.Progress(context.WithoutCancel(ctx), i); err != nil {
					t.Errorf("Progress: %v", err)
				}
			}
		}()
		return "done", nil
	})
	stop := rpctest.Serve(t, s)
	c := b12Case{topic: "jobs", payload: `{}`, pin: -1, tp: b12TP}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		m := g.request(c, ids[i])
		m.Key = ids[i] // spread over the workers
		g.produce(m)
		g.produce(m)
	}
	// Every copy settled: a copy that came while the first was in flight
	// got no reply of its own, one that came after it the stored one.
	committedAt(t, g.b, "srv", "jobs", 0, 2*n)
	resent := 0
	for i := range ids {
		replies := g.answers(ids[i], rpc.KindReply)
		require.NotEmpty(t, replies)
		require.LessOrEqual(t, len(replies), 2)
		tp := g.checkAnswer(c, ids[i], rpc.KindReply, replies[0])
		if len(replies) == 2 {
			resent++
			g.sameRecord("resent", replies[0], replies[1])
		}
		for _, p := range g.awaitAnswers(ids[i], rpc.KindProgress, notices) {
			require.Equal(t, tp, g.checkAnswer(c, ids[i], rpc.KindProgress, p))
		}
		g.checkMarker(c, ids[i], replies[0])
	}
	t.Logf("%d of %d duplicates answered from the window (the others waited for the first copy)", resent, n)
	require.NoError(t, stop())
}
