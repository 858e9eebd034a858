package rpctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// NewTransports returns n transports connected to one broker, so that a
// client on one reaches a server on another. The constructor owns their
// cleanup (register it with t.Cleanup); the suite does not close them. A
// transport may be returned more than once (the embedded broker serves every
// role by itself).
type NewTransports func(t testing.TB, n int) []transport.Transport

// rpcCaseTimeout is the watchdog of one RPC case.
const rpcCaseTimeout = 30 * time.Second

// TestRPC runs the RPC-level conformance suite: the rules of package rpc,
// checked end to end over the transports newTransports makes. Topics are
// unique per case and auto-created by the transport.
func TestRPC(t *testing.T, newTransports NewTransports) {
	cases := []struct {
		name string
		fn   func(t *testing.T, e *rpcEnv)
	}{
		{"CallRoundTrip", rpcCallRoundTrip},
		{"CallRightAfterNewClient", rpcCallRightAfterNewClient},
		{"TypedCall", rpcTypedCall},
		{"Notify", rpcNotify},
		{"NotifyReadableByLegacyConsumer", rpcNotifyLegacyReadable},
		{"SendOnReply", rpcSendOnReply},
		{"ProgressOnCall", rpcProgressOnCall},
		{"ErrorCodes", rpcErrorCodes},
		{"PanicBecomesInternal", rpcPanic},
		{"Timeout", rpcTimeout},
		{"DeadlineTravels", rpcDeadlineTravels},
		{"ExpiredRequestNotRun", rpcExpiredNotRun},
		{"LateReplyCounted", rpcLateReply},
		{"UnhandledFallback", rpcUnhandled},
		{"LegacyRoute", rpcLegacyRoute},
		{"MethodRoute", rpcMethodRoute},
		{"BadPayload", rpcBadPayload},
		{"Concurrency", rpcConcurrency},
		{"Bidirectional", rpcBidirectional},
		{"ManyCallersNoMisroute", rpcManyCallers},
		{"ClientClose", rpcClientClose},
		{"ServeDrains", rpcServeDrains},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &rpcEnv{t: t, newTransports: newTransports, prefix: "rpc-" + strings.ToLower(c.name) + "-" + uuid.NewString()[:8]}
			watchdog(t, rpcCaseTimeout, func() { c.fn(t, e) })
		})
	}
}

// watchdog runs fn and fails t if it has not returned within d.
func watchdog(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("watchdog: case still running after %v", d)
	}
}

type rpcEnv struct {
	t             *testing.T
	newTransports NewTransports
	prefix        string
}

func (e *rpcEnv) topic(name string) string { return e.prefix + "-" + name }

// quiet is a logger that drops everything; cases that check logs make their own.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// client starts a client named name on tr, closed at cleanup.
func (e *rpcEnv) client(tr transport.Transport, name string, opts ...rpc.ClientOption) *rpc.Client {
	e.t.Helper()
	opts = append([]rpc.ClientOption{rpc.WithName(e.prefix + "-" + name), rpc.WithLogger(quiet)}, opts...)
	c, err := rpc.NewClient(tr, opts...)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// server builds a server named name; register routes, then call serve.
func (e *rpcEnv) server(tr transport.Transport, name string, opts ...rpc.ServerOption) *rpc.Server {
	e.t.Helper()
	opts = append([]rpc.ServerOption{rpc.WithName(e.prefix + "-" + name), rpc.WithLogger(quiet), rpc.WithDrainTimeout(5 * time.Second)}, opts...)
	s, err := rpc.NewServer(tr, opts...)
	require.NoError(e.t, err)
	return s
}

// serve runs s until the case ends and checks that Serve returned nil.
func (e *rpcEnv) serve(s *rpc.Server) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(e.t, err, "Serve returned an error")
		case <-time.After(15 * time.Second):
			e.t.Error("Serve did not return after cancel")
		}
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type echoReq struct {
	Text string `json:"text"`
	N    int    `json:"n"`
}

type echoResp struct {
	Text string `json:"text"`
	N    int    `json:"n"`
	From string `json:"from"`
}

func rpcCallRoundTrip(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("echo")
	s := e.server(trs[1], "srv")
	s.HandleFunc(topic, func(ctx context.Context, r *rpc.Request) (any, error) {
		var in echoReq
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		return echoResp{Text: strings.ToUpper(in.Text), N: in.N + 1, From: r.From}, nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	for i := range 3 {
		r, err := c.Call(ctxT(t, 10*time.Second), topic, echoReq{Text: "hi", N: i})
		require.NoError(t, err)
		var out echoResp
		require.NoError(t, r.Decode(&out))
		assert.Equal(t, echoResp{Text: "HI", N: i + 1, From: e.prefix + "-cli"}, out)
		assert.Equal(t, rpc.KindReply, r.Kind)
		assert.Equal(t, e.prefix+"-srv", r.From)
		assert.NotEmpty(t, r.CorrelationID)
	}
}

func rpcCallRightAfterNewClient(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("first")
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) { return n * 2, nil })
	e.serve(s)
	// Several fresh clients, each calling the instant it exists: the reply
	// reader must already be positioned.
	for i := range 5 {
		c := e.client(trs[0], fmt.Sprintf("cli%d", i))
		out, err := rpc.Call[int](ctxT(t, 10*time.Second), c, topic, 21+i)
		require.NoError(t, err)
		assert.Equal(t, 2*(21+i), out)
	}
}

func rpcTypedCall(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("typed")
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, in echoReq) (echoResp, error) {
		return echoResp{Text: in.Text + "!", N: in.N * 10}, nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	out, err := rpc.Call[echoResp](ctxT(t, 10*time.Second), c, topic, echoReq{Text: "go", N: 4})
	require.NoError(t, err)
	assert.Equal(t, echoResp{Text: "go!", N: 40}, out)

	// A reply that does not fit Resp is a decode error with a code.
	_, err = rpc.Call[[]string](ctxT(t, 10*time.Second), c, topic, echoReq{Text: "x"})
	require.Error(t, err)
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err))
}

func rpcNotify(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("audit")
	got := make(chan *rpc.Request, 1)
	s := e.server(trs[1], "srv")
	s.HandleFunc(topic, func(ctx context.Context, r *rpc.Request) (any, error) {
		got <- r
		return "ignored", nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	require.NoError(t, c.Notify(ctxT(t, 5*time.Second), topic, map[string]string{"event": "login"}, rpc.WithKey("user-7")))
	select {
	case r := <-got:
		assert.Equal(t, rpc.KindNotify, r.Kind)
		assert.Equal(t, "user-7", r.Key)
		assert.JSONEq(t, `{"event":"login"}`, string(r.Payload))
		assert.Equal(t, e.prefix+"-cli", r.From)
	case <-time.After(10 * time.Second):
		t.Fatal("notification not delivered")
	}
	// Nothing comes back for a notification.
	assert.Equal(t, 0, c.Stats().Pending)
}

func rpcNotifyLegacyReadable(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 1)
	topic := e.topic("seed")
	cons, err := trs[0].Subscribe(ctxT(t, 10*time.Second), transport.Subscription{Group: e.prefix + "-php", Topics: []string{topic}, Start: transport.StartEarliest})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cons.Close() })
	c := e.client(trs[0], "cli")
	const producer = `App\Http\Controllers\ReportsController`
	require.NoError(t, c.Notify(ctxT(t, 5*time.Second), topic, map[string]string{"from": "2026-10-01", "to": "2026-11-01"}, rpc.WithKey(producer)))
	msgs := pollN(t, cons, 1, 10*time.Second)
	// What the seed's PHP consumer does: $message['key'] is the producer,
	// json_decode($message['value']) is the payload.
	assert.Equal(t, producer, msgs[0].Key)
	var payload map[string]string
	require.NoError(t, json.Unmarshal(msgs[0].Value, &payload))
	assert.Equal(t, map[string]string{"from": "2026-10-01", "to": "2026-11-01"}, payload)
}

func rpcSendOnReply(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("jobs")
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) {
		if err := rpc.Progress(ctx, map[string]int{"step": 1}); err != nil {
			return 0, err
		}
		if n < 0 {
			return 0, rpc.Errorf(rpc.CodeInvalidArgument, "negative %d", n)
		}
		return n + 100, nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	type notice struct {
		kind rpc.Kind
		corr string
		body string
		err  *rpc.Error
	}
	notices := make(chan notice, 16)
	require.NoError(t, c.OnReply(func(ctx context.Context, r *rpc.Reply) error {
		notices <- notice{r.Kind, r.CorrelationID, string(r.Payload), r.Err}
		return nil
	}))
	require.Error(t, c.OnReply(func(context.Context, *rpc.Reply) error { return nil }), "second OnReply")
	id, err := c.Send(ctxT(t, 5*time.Second), topic, 5)
	require.NoError(t, err)
	badID, err := c.Send(ctxT(t, 5*time.Second), topic, -1)
	require.NoError(t, err)
	seen := map[string][]notice{}
	for len(seen[id]) < 2 || len(seen[badID]) < 2 {
		select {
		case n := <-notices:
			seen[n.corr] = append(seen[n.corr], n)
		case <-time.After(10 * time.Second):
			t.Fatalf("notices so far: %+v", seen)
		}
	}
	require.Len(t, seen[id], 2)
	assert.Equal(t, rpc.KindProgress, seen[id][0].kind, "progress comes before completion")
	assert.JSONEq(t, `{"step":1}`, seen[id][0].body)
	assert.Equal(t, rpc.KindReply, seen[id][1].kind)
	assert.Equal(t, "105", seen[id][1].body)
	assert.Nil(t, seen[id][1].err)
	require.NotNil(t, seen[badID][1].err)
	assert.Equal(t, rpc.CodeInvalidArgument, seen[badID][1].err.Code)
	assert.Equal(t, "negative -1", seen[badID][1].err.Message)
}

func rpcProgressOnCall(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("progress")
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, n int) (string, error) {
		for i := 1; i <= n; i++ {
			if err := rpc.Progress(ctx, i); err != nil {
				return "", err
			}
		}
		return "done", nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	var mu sync.Mutex
	var steps []string
	out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, 3, rpc.WithProgress(func(r *rpc.Reply) {
		mu.Lock()
		steps = append(steps, string(r.Payload))
		mu.Unlock()
	}))
	require.NoError(t, err)
	assert.Equal(t, "done", out)
	mu.Lock()
	defer mu.Unlock()
	// Progress and reply share a partition only when pinned; on one
	// partition (or in order) all three arrive before the reply.
	assert.Subset(t, []string{"1", "2", "3"}, steps)
}

func rpcErrorCodes(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("errors")
	s := e.server(trs[1], "srv")
	plain := errors.New("disk on fire")
	s.HandleFunc(topic, func(ctx context.Context, r *rpc.Request) (any, error) {
		var which string
		_ = r.Decode(&which)
		switch which {
		case "invalid":
			return nil, rpc.Errorf(rpc.CodeInvalidArgument, "bad range %s..%s", "b", "a")
		case "notfound":
			return nil, rpc.NewError(rpc.CodeNotFound, errors.New("no such report"))
		case "details":
			return nil, &rpc.Error{Code: rpc.CodeFailedPrecondition, Message: "locked", Details: json.RawMessage(`{"holder":"job-9"}`)}
		case "plain":
			return nil, plain
		}
		return "ok", nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	for _, tc := range []struct {
		in      string
		code    rpc.Code
		msg     string
		details string
	}{
		{"invalid", rpc.CodeInvalidArgument, "bad range b..a", ""},
		{"notfound", rpc.CodeNotFound, "no such report", ""},
		{"details", rpc.CodeFailedPrecondition, "locked", `{"holder":"job-9"}`},
		{"plain", rpc.CodeUnknown, "disk on fire", ""},
	} {
		_, err := c.Call(ctxT(t, 10*time.Second), topic, tc.in)
		require.Error(t, err, tc.in)
		var re *rpc.Error
		require.True(t, errors.As(err, &re), "%s: %T %v", tc.in, err, err)
		assert.Equal(t, tc.code, re.Code, tc.in)
		assert.Equal(t, tc.code, rpc.CodeOf(err), tc.in)
		assert.Equal(t, tc.msg, re.Message, tc.in)
		if tc.details != "" {
			assert.JSONEq(t, tc.details, string(re.Details), tc.in)
		}
	}
	// The server is still serving after errors.
	r, err := c.Call(ctxT(t, 10*time.Second), topic, "fine")
	require.NoError(t, err)
	assert.Equal(t, `"ok"`, string(r.Payload))
}

func rpcPanic(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("panic")
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, boom bool) (string, error) {
		if boom {
			panic("kaboom")
		}
		return "alive", nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	_, err := c.Call(ctxT(t, 10*time.Second), topic, true)
	require.Error(t, err)
	assert.Equal(t, rpc.CodeInternal, rpc.CodeOf(err))
	assert.Contains(t, err.Error(), "kaboom")
	out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, false)
	require.NoError(t, err, "server keeps serving after a panic")
	assert.Equal(t, "alive", out)
}

func rpcTimeout(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("slow")
	// The canceled call below leaves its handler waiting for a deadline
	// far away: a short drain ends the case promptly.
	s := e.server(trs[1], "srv", rpc.WithDrainTimeout(200*time.Millisecond))
	rpc.Handle(s, topic, func(ctx context.Context, _ int) (int, error) {
		<-ctx.Done() // the request's deadline reaches the handler
		return 0, ctx.Err()
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	start := time.Now()
	_, err := c.Call(ctxT(t, 10*time.Second), topic, 1, rpc.WithTimeout(300*time.Millisecond))
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err))
	assert.ErrorIs(t, err, rpc.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var re *rpc.Error
	assert.True(t, errors.As(err, &re))

	// A context deadline works the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Call(ctx, topic, 2)
	assert.ErrorIs(t, err, rpc.ErrTimeout)

	// Cancellation is canceled, not a timeout.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = c.Call(ctx, topic, 3, rpc.WithTimeout(10*time.Second))
	assert.Equal(t, rpc.CodeCanceled, rpc.CodeOf(err))
	assert.ErrorIs(t, err, context.Canceled)
}

func rpcDeadlineTravels(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("deadline")
	s := e.server(trs[1], "srv")
	s.HandleFunc(topic, func(ctx context.Context, r *rpc.Request) (any, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			return nil, errors.New("no deadline in handler ctx")
		}
		return time.Until(dl).Milliseconds(), nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	left, err := rpc.Call[int64](ctxT(t, 10*time.Second), c, topic, nil, rpc.WithTimeout(4*time.Second))
	require.NoError(t, err)
	assert.Greater(t, left, int64(0))
	assert.LessOrEqual(t, left, int64(4000))
}

func rpcExpiredNotRun(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("expired")
	var runs atomic.Int64
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, tag string) (string, error) {
		runs.Add(1)
		return tag, nil
	})
	// A request written an hour ago with a one-second budget: expired
	// before any server reads it.
	_, err := trs[0].Produce(ctxT(t, 5*time.Second), transport.Message{
		Topic: topic, Value: []byte(`"stale"`), Time: time.Now().Add(-time.Hour),
		Headers: []transport.Header{
			{Key: rpc.HeaderVersion, Value: "1"}, {Key: rpc.HeaderID, Value: uuid.NewString()},
			{Key: rpc.HeaderKind, Value: "request"}, {Key: rpc.HeaderReplyTo, Value: e.topic("nobody")},
			{Key: rpc.HeaderTimeoutMs, Value: "1000"},
		},
	})
	require.NoError(t, err)
	e.serve(s)
	c := e.client(trs[0], "cli")
	out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, "fresh")
	require.NoError(t, err)
	assert.Equal(t, "fresh", out)
	assert.Equal(t, int64(1), runs.Load(), "only the fresh request ran")
}

func rpcLateReply(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("late")
	release := make(chan struct{})
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, wait bool) (string, error) {
		if wait {
			<-release // ignores its deadline on purpose
		}
		return "reply", nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	_, err := c.Call(ctxT(t, 10*time.Second), topic, true, rpc.WithTimeout(200*time.Millisecond))
	require.ErrorIs(t, err, rpc.ErrTimeout)
	close(release)
	require.Eventually(t, func() bool { return c.Stats().Late == 1 }, 10*time.Second, 5*time.Millisecond, "late reply counted")
	out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, false)
	require.NoError(t, err, "a later call gets its own reply, not the late one")
	assert.Equal(t, "reply", out)
	assert.Equal(t, int64(1), c.Stats().Late)
	assert.Equal(t, 0, c.Stats().Pending)
}

func rpcUnhandled(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("routed")
	got := make(chan *rpc.Request, 4)
	s := e.server(trs[1], "srv")
	s.HandleFunc(topic+"/known", func(ctx context.Context, r *rpc.Request) (any, error) { return "known", nil })
	s.HandleUnhandled(func(ctx context.Context, r *rpc.Request) error {
		got <- r
		return nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	_, err := c.Call(ctxT(t, 10*time.Second), topic, 1, rpc.WithMethod("unknown"))
	require.Error(t, err)
	assert.Equal(t, rpc.CodeUnimplemented, rpc.CodeOf(err))
	assert.Contains(t, err.Error(), "unknown")
	select {
	case r := <-got:
		assert.Equal(t, "unknown", r.Method)
	case <-time.After(5 * time.Second):
		t.Fatal("fallback not called")
	}
	out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, 1, rpc.WithMethod("known"))
	require.NoError(t, err)
	assert.Equal(t, "known", out)
}

func rpcLegacyRoute(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("reports")
	const producer = `App\Http\Controllers\ReportsController`
	type rng struct{ From, To string }
	got := make(chan rng, 1)
	fallback := make(chan *rpc.Request, 1)
	s := e.server(trs[1], "srv")
	s.HandleLegacy(producer, topic, func(ctx context.Context, r *rpc.Request) (any, error) {
		var in struct {
			From string `json:"from"`
			To   string `json:"to"`
		}
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		assert.Equal(t, producer, r.From)
		assert.True(t, r.Legacy)
		got <- rng{in.From, in.To}
		return nil, nil
	})
	s.HandleUnhandled(func(ctx context.Context, r *rpc.Request) error {
		fallback <- r
		return nil
	})
	e.serve(s)
	// Exactly what the seed's KafkaService::produce writes: key = producer
	// class, value = json_encode($data), no headers.
	_, err := trs[0].Produce(ctxT(t, 5*time.Second),
		transport.Message{Topic: topic, Key: producer, Value: []byte(`{"from":"2026-10-26","to":"2026-11-26"}`)},
		transport.Message{Topic: topic, Key: `App\Http\Controllers\Other`, Value: []byte(`{}`)},
	)
	require.NoError(t, err)
	select {
	case r := <-got:
		assert.Equal(t, rng{"2026-10-26", "2026-11-26"}, r)
	case <-time.After(10 * time.Second):
		t.Fatal("legacy record not routed")
	}
	select {
	case r := <-fallback:
		assert.Equal(t, `App\Http\Controllers\Other`, r.From)
		assert.True(t, r.Legacy)
	case <-time.After(10 * time.Second):
		t.Fatal("unknown legacy producer not sent to the fallback")
	}
}

func rpcMethodRoute(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("methods")
	s := e.server(trs[1], "srv")
	s.HandleFunc(topic, func(ctx context.Context, r *rpc.Request) (any, error) { return "topic:" + r.Method, nil })
	s.HandleFunc(topic+"/monthly", func(ctx context.Context, r *rpc.Request) (any, error) { return "monthly", nil })
	e.serve(s)
	c := e.client(trs[0], "cli")
	for method, want := range map[string]string{"monthly": "monthly", "weekly": "topic:weekly", "": "topic:"} {
		out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, nil, rpc.WithMethod(method))
		require.NoError(t, err)
		assert.Equal(t, want, out, "method %q", method)
	}
}

func rpcBadPayload(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("typedbad")
	var runs atomic.Int64
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, in echoReq) (string, error) {
		runs.Add(1)
		return in.Text, nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	_, err := c.Call(ctxT(t, 10*time.Second), topic, []string{"not", "an", "object"})
	require.Error(t, err)
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err))
	assert.Equal(t, int64(0), runs.Load(), "handler not run on an undecodable payload")
	// A payload that is not JSON at all is refused on the client side.
	_, err = c.Call(ctxT(t, 10*time.Second), topic, []byte("{not json"))
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err))
	out, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, echoReq{Text: "ok"})
	require.NoError(t, err)
	assert.Equal(t, "ok", out)
}

func rpcConcurrency(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("bounded")
	var cur, peak atomic.Int64
	s := e.server(trs[1], "srv", rpc.WithConcurrency(2))
	rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) {
		v := cur.Add(1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // hold the slot so calls overlap
		cur.Add(-1)
		return n, nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := rpc.Call[int](ctxT(t, 20*time.Second), c, topic, i)
			assert.NoError(t, err)
			assert.Equal(t, i, out)
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int64(2))
	assert.GreaterOrEqual(t, peak.Load(), int64(1))
}

func rpcBidirectional(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	pingTopic, pongTopic := e.topic("ping"), e.topic("pong")
	// Service A serves ping and calls pong; service B serves pong and calls
	// ping. Each process is a client and a server at once.
	aCli := e.client(trs[0], "a")
	bCli := e.client(trs[1], "b")
	aSrv := e.server(trs[0], "a")
	bSrv := e.server(trs[1], "b")
	rpc.Handle(aSrv, pingTopic, func(ctx context.Context, n int) (int, error) {
		if n <= 0 {
			return 0, nil
		}
		return rpc.Call[int](ctx, aCli, pongTopic, n-1) // calls B while handling
	})
	rpc.Handle(bSrv, pongTopic, func(ctx context.Context, n int) (int, error) {
		if n <= 0 {
			return 100, nil
		}
		v, err := rpc.Call[int](ctx, bCli, pingTopic, n-1)
		return v + 1, err
	})
	e.serve(aSrv)
	e.serve(bSrv)
	out, err := rpc.Call[int](ctxT(t, 20*time.Second), bCli, pingTopic, 4)
	require.NoError(t, err)
	// ping4 → pong3 → ping2 → pong1 → ping0 = 0; pong adds 1 twice.
	assert.Equal(t, 2, out)
	out, err = rpc.Call[int](ctxT(t, 20*time.Second), aCli, pongTopic, 0)
	require.NoError(t, err)
	assert.Equal(t, 100, out)
}

func rpcManyCallers(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 3)
	topic := e.topic("many")
	s := e.server(trs[2], "srv", rpc.WithConcurrency(8))
	rpc.Handle(s, topic, func(ctx context.Context, in echoReq) (echoReq, error) { return in, nil })
	e.serve(s)
	// Two clients of one service share a reply topic: each must get only
	// its own replies.
	c1 := e.client(trs[0], "shared", rpc.WithReplyTopic(e.topic("shared-replies")))
	c2 := e.client(trs[1], "shared", rpc.WithReplyTopic(e.topic("shared-replies")))
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := c1
			if w%2 == 1 {
				c = c2
			}
			for i := range 20 {
				in := echoReq{Text: fmt.Sprintf("w%d", w), N: i}
				out, err := rpc.Call[echoReq](ctxT(t, 20*time.Second), c, topic, in)
				if !assert.NoError(t, err) {
					return
				}
				if out != in {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, wrong.Load(), "replies delivered to the wrong caller")
	assert.Zero(t, c1.Stats().Pending)
	assert.Zero(t, c2.Stats().Pending)
}

func rpcClientClose(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("closing")
	entered := make(chan struct{}, 1)
	s := e.server(trs[1], "srv", rpc.WithDrainTimeout(200*time.Millisecond))
	rpc.Handle(s, topic, func(ctx context.Context, _ int) (int, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	})
	e.serve(s)
	c, err := rpc.NewClient(trs[0], rpc.WithName(e.prefix+"-cli"), rpc.WithLogger(quiet))
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), topic, 1, rpc.WithTimeout(20*time.Second))
		errc <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the handler")
	}
	require.NoError(t, c.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, rpc.ErrClosed)
		assert.Equal(t, rpc.CodeUnavailable, rpc.CodeOf(err))
	case <-time.After(5 * time.Second):
		t.Fatal("pending call not failed by Close")
	}
	require.NoError(t, c.Close(), "Close is idempotent")
	_, err = c.Call(ctxT(t, time.Second), topic, 1)
	assert.ErrorIs(t, err, rpc.ErrClosed)
	_, err = c.Send(ctxT(t, time.Second), topic, 1)
	assert.ErrorIs(t, err, rpc.ErrClosed)
	assert.ErrorIs(t, c.Notify(ctxT(t, time.Second), topic, 1), rpc.ErrClosed)
}

func rpcServeDrains(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("drain")
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	s := e.server(trs[1], "srv")
	rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) {
		entered <- struct{}{}
		<-release
		return n * 3, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	c := e.client(trs[0], "cli")
	res := make(chan int, 1)
	go func() {
		out, err := rpc.Call[int](context.Background(), c, topic, 7, rpc.WithTimeout(20*time.Second))
		assert.NoError(t, err)
		res <- out
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the handler")
	}
	cancel() // Serve stops polling but lets the in-flight handler finish
	select {
	case err := <-served:
		t.Fatalf("Serve returned before its handler finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-served:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after draining")
	}
	select {
	case out := <-res:
		assert.Equal(t, 21, out, "the drained handler's reply was delivered")
	case <-time.After(10 * time.Second):
		t.Fatal("reply of the drained handler not delivered")
	}
}

// pollN polls c until it has n records or d passes.
func pollN(t *testing.T, c transport.Consumer, n int, d time.Duration) []transport.Message {
	t.Helper()
	deadline := time.Now().Add(d)
	var out []transport.Message
	for len(out) < n {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got %d of %d records within %v", len(out), n, d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(left, time.Second))
		msgs, err := c.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			require.NoError(t, err)
		}
		out = append(out, msgs...)
	}
	return out
}
