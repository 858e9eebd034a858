package rpctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
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

// RPCCase is one rule of the RPC-level conformance suite, which a
// third-party transport can run by itself (see RPCCases).
type RPCCase struct {
	// Name names the case, as in TestRPC's subtests.
	Name string
	fn   func(t *testing.T, e *rpcEnv)
}

// Run runs the case over the transports newTransports makes, with the
// suite's watchdog (30 s).
func (c RPCCase) Run(t *testing.T, newTransports NewTransports) {
	e := &rpcEnv{t: t, newTransports: newTransports, prefix: "rpc-" + strings.ToLower(c.Name) + "-" + uuid.NewString()[:8]}
	watchdog(t, rpcCaseTimeout, func() { c.fn(t, e) })
}

// RPCCases returns the cases of the RPC-level conformance suite, in the
// order TestRPC runs them.
func RPCCases() []RPCCase {
	return []RPCCase{
		{"CallRoundTrip", rpcCallRoundTrip},
		{"CallRightAfterNewClient", rpcCallRightAfterNewClient},
		{"TypedCall", rpcTypedCall},
		{"Notify", rpcNotify},
		{"NotifyReadableByLegacyConsumer", rpcNotifyLegacyReadable},
		{"SendOnNotice", rpcSendOnNotice},
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
		{"DedupRedelivered", rpcDedup},
		{"DedupSurvivesRestart", rpcDedupRestart},
		{"PoisonBadEnvelope", rpcPoisonEnvelope},
		{"PoisonUndecodable", rpcPoisonUndecodable},
		{"PoisonNotJSON", rpcPoisonNotJSON},
		{"PoisonUnknownRoute", rpcPoisonUnknownRoute},
		{"PoisonOversize", rpcPoisonOversize},
		{"RetryableThenSuccess", rpcRetryable},
		{"RetriesExhausted", rpcRetriesExhausted},
		{"KeyOrdering", rpcKeyOrdering},
		{"NoticeDedup", rpcNoticeDedup},
	}
}

// TestRPC runs the RPC-level conformance suite: the rules of package rpc,
// checked end to end over the transports newTransports makes, one subtest
// per case. Topics are unique per case and auto-created by the transport.
func TestRPC(t *testing.T, newTransports NewTransports) {
	for _, c := range RPCCases() {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, newTransports) })
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
// quiet is a logger that drops everything, unless RPCTEST_LOG is set (to
// debug a failing case): then it writes every level to stderr.
var quiet = func() *slog.Logger {
	if os.Getenv("RPCTEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}()

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
	Serve(e.t, s)
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
		assert.JSONEq(t, `{"event":"login"}`, string(r.Payload()))
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

func rpcSendOnNotice(t *testing.T, e *rpcEnv) {
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
	require.NoError(t, c.OnNotice(func(ctx context.Context, r *rpc.Reply) error {
		notices <- notice{r.Kind, r.CorrelationID, string(r.Payload()), r.Err}
		return nil
	}))
	require.Error(t, c.OnNotice(func(context.Context, *rpc.Reply) error { return nil }), "second OnNotice")
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
	assert.Equal(t, rpc.CodeInvalidArgument, seen[badID][1].err.Code())
	assert.Equal(t, "negative -1", seen[badID][1].err.Message())
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
		steps = append(steps, string(r.Payload()))
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
			return nil, rpc.Errorf(rpc.CodeFailedPrecondition, "locked").WithDetails(json.RawMessage(`{"holder":"job-9"}`))
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
		assert.Equal(t, tc.code, re.Code(), tc.in)
		assert.Equal(t, tc.code, rpc.CodeOf(err), tc.in)
		assert.Equal(t, tc.msg, re.Message(), tc.in)
		if tc.details != "" {
			assert.JSONEq(t, tc.details, string(re.Details()), tc.in)
		}
	}
	// The server is still serving after errors.
	r, err := c.Call(ctxT(t, 10*time.Second), topic, "fine")
	require.NoError(t, err)
	assert.Equal(t, `"ok"`, string(r.Payload()))
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
	// Wait until the server serves (a network transport's group join takes
	// round trips): a request read only after its 200ms deadline would be
	// dropped unrun, and no late reply would come.
	_, err := rpc.Call[string](ctxT(t, 10*time.Second), c, topic, false)
	require.NoError(t, err, "the server answers")
	_, err = c.Call(ctxT(t, 10*time.Second), topic, true, rpc.WithTimeout(200*time.Millisecond))
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

// rawRequest is a request record as a Client writes it, for cases that
// must control the id or corrupt the envelope.
func rawRequest(topic, id, replyTo string, payload string, extra ...transport.Header) transport.Message {
	h := []transport.Header{
		{Key: rpc.HeaderVersion, Value: rpc.ProtocolVersion}, {Key: rpc.HeaderID, Value: id},
		{Key: rpc.HeaderKind, Value: string(rpc.KindRequest)}, {Key: rpc.HeaderFrom, Value: "raw"},
	}
	if replyTo != "" {
		h = append(h, transport.Header{Key: rpc.HeaderReplyTo, Value: replyTo})
	}
	return transport.Message{Topic: topic, Key: id, Value: []byte(payload), Headers: append(h, extra...)}
}

// replyReader tails (or subscribes to) topic and returns a function that
// waits for the next n records.
func (e *rpcEnv) reader(tr transport.Transport, topic string) func(n int) []transport.Message {
	e.t.Helper()
	var c transport.Consumer
	var err error
	if tl, ok := tr.(transport.Tailer); ok {
		c, err = tl.Tail(ctxT(e.t, 10*time.Second), topic)
	} else {
		c, err = tr.Subscribe(ctxT(e.t, 10*time.Second), transport.Subscription{Group: topic + "-" + uuid.NewString(), Topics: []string{topic}})
	}
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = c.Close() })
	return func(n int) []transport.Message { return pollN(e.t, c, n, 10*time.Second) }
}

func header(m transport.Message, k string) string {
	v, _ := m.Header(k)
	return v
}

func rpcDedup(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic, replies := e.topic("dedup"), e.topic("dedup-replies")
	var runs sync.Map // id → *atomic.Int64
	hold := make(chan struct{})
	s := e.server(trs[1], "srv")
	s.HandleFunc(topic, func(ctx context.Context, r *rpc.Request) (any, error) {
		if string(r.Payload()) == `"hold"` {
			<-hold
		}
		n, _ := runs.LoadOrStore(r.ID, new(atomic.Int64))
		return n.(*atomic.Int64).Add(1), nil
	})
	e.serve(s)
	next := e.reader(trs[0], replies)
	runsOf := func(id string) int64 {
		n, ok := runs.Load(id)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}

	// Handled, then delivered twice more (a producer retry after a lost
	// response, a redelivery): not run again, answered each time with the
	// stored reply.
	id := uuid.NewString()
	_, err := trs[0].Produce(ctxT(t, 5*time.Second), rawRequest(topic, id, replies, `{}`))
	require.NoError(t, err)
	first := next(1)[0]
	assert.Equal(t, "1", string(first.Value))
	_, err = trs[0].Produce(ctxT(t, 5*time.Second), rawRequest(topic, id, replies, `{}`), rawRequest(topic, id, replies, `{}`))
	require.NoError(t, err)
	for _, m := range next(2) {
		assert.Equal(t, id, header(m, rpc.HeaderCorrelationID))
		assert.Equal(t, "1", string(m.Value), "the stored reply is sent again")
	}
	assert.Equal(t, int64(1), runsOf(id), "handler ran once")
	assert.Equal(t, int64(2), s.Stats().Duplicates)

	// A copy arriving while the first is still running is dropped: the
	// first one replies.
	busy := uuid.NewString()
	_, err = trs[0].Produce(ctxT(t, 5*time.Second), rawRequest(topic, busy, replies, `"hold"`), rawRequest(topic, busy, replies, `"hold"`))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.Stats().Duplicates == 3 }, 10*time.Second, 2*time.Millisecond)
	close(hold)
	m := next(1)[0]
	assert.Equal(t, busy, header(m, rpc.HeaderCorrelationID))
	assert.Equal(t, int64(1), runsOf(busy))
}

func rpcDedupRestart(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic, replies := e.topic("dedup2"), e.topic("dedup2-replies")
	var runs atomic.Int64
	handler := func(ctx context.Context, r *rpc.Request) (any, error) { return runs.Add(1), nil }
	// First server handles the request and stops.
	s1 := e.server(trs[1], "srv", rpc.WithGroup(e.prefix+"-grp"))
	s1.HandleFunc(topic, handler)
	stop := Serve(t, s1)
	next := e.reader(trs[0], replies)
	id := uuid.NewString()
	_, err := trs[0].Produce(ctxT(t, 5*time.Second), rawRequest(topic, id, replies, `{}`))
	require.NoError(t, err)
	next(1)
	require.NoError(t, stop())
	// A new server of the same group (a fresh process: its own window) gets
	// the same request again: the dedup topic tells it the request was
	// handled.
	s2 := e.server(trs[1], "srv", rpc.WithGroup(e.prefix+"-grp"))
	s2.HandleFunc(topic, handler)
	e.serve(s2)
	_, err = trs[0].Produce(ctxT(t, 5*time.Second), rawRequest(topic, id, replies, `{}`))
	require.NoError(t, err)
	m := next(1)[0]
	assert.Equal(t, "1", string(m.Value))
	assert.Equal(t, int64(1), runs.Load(), "not run again after a restart")
	assert.Equal(t, int64(1), s2.Stats().Duplicates)
}

// poisonCase checks the common outcome of poison input: a dead-letter
// record with the reason and origin, an error reply, and the server going on.
func poisonCase(t *testing.T, e *rpcEnv, name string, opts []rpc.ServerOption, register func(s *rpc.Server, topic string), bad transport.Message, reason string, code rpc.Code) {
	trs := e.newTransports(t, 2)
	topic, replies := e.topic(name), e.topic(name+"-replies")
	logs := &logRecorder{}
	s := e.server(trs[1], "srv", append(opts, rpc.WithLogger(slog.New(logs)))...)
	register(s, topic)
	e.serve(s)
	nextReply := e.reader(trs[0], replies)
	nextDLQ := e.reader(trs[0], topic+rpc.DeadLetterSuffix)
	bad.Topic = topic
	for i, h := range bad.Headers {
		if h.Key == rpc.HeaderReplyTo {
			bad.Headers[i].Value = replies
		}
	}
	out, err := trs[0].Produce(ctxT(t, 5*time.Second), bad)
	require.NoError(t, err)
	d := nextDLQ(1)[0]
	assert.Equal(t, reason, header(d, rpc.HeaderDLQReason))
	assert.Equal(t, code.String(), header(d, rpc.HeaderDLQCode))
	assert.NotEmpty(t, header(d, rpc.HeaderDLQError))
	assert.Equal(t, topic, header(d, rpc.HeaderDLQTopic))
	assert.Equal(t, fmt.Sprint(out[0].Partition), header(d, rpc.HeaderDLQPartition))
	assert.Equal(t, fmt.Sprint(out[0].Offset), header(d, rpc.HeaderDLQOffset))
	assert.Equal(t, string(bad.Value), string(d.Value), "the original value is kept")
	if _, hasReplyTo := bad.Header(rpc.HeaderReplyTo); hasReplyTo {
		r := nextReply(1)[0]
		assert.Equal(t, code.String(), header(r, rpc.HeaderErrorCode))
	}
	assert.Equal(t, int64(1), s.Stats().DeadLettered)
	// One clear log line says what happened.
	lines := logs.find("rpc: record dead-lettered")
	if assert.Len(t, lines, 1) {
		assert.Equal(t, slog.LevelWarn, lines[0].Level)
		attrs := map[string]string{}
		lines[0].Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		assert.Equal(t, reason, attrs["reason"])
		assert.Equal(t, topic, attrs["topic"])
		assert.Equal(t, fmt.Sprint(out[0].Offset), attrs["offset"])
		assert.Equal(t, topic+rpc.DeadLetterSuffix, attrs["dlq"])
	}
	// The partition is not stalled: the next request is served.
	c := e.client(trs[0], "cli")
	_, err = c.Call(ctxT(t, 10*time.Second), topic, echoReq{Text: "next"}, rpc.WithKey(bad.Key))
	if code == rpc.CodeUnimplemented {
		assert.Equal(t, rpc.CodeUnimplemented, rpc.CodeOf(err))
	} else {
		require.NoError(t, err)
	}
}

func echoRoute(s *rpc.Server, topic string) {
	rpc.Handle(s, topic, func(ctx context.Context, in echoReq) (echoReq, error) { return in, nil })
}

func rpcPoisonEnvelope(t *testing.T, e *rpcEnv) {
	bad := rawRequest("", uuid.NewString(), "reply-placeholder", `{}`, transport.Header{Key: rpc.HeaderTimeoutMs, Value: "soon"})
	poisonCase(t, e, "env", nil, echoRoute, bad, "bad_envelope", rpc.CodeInvalidArgument)
}

func rpcPoisonUndecodable(t *testing.T, e *rpcEnv) {
	bad := rawRequest("", uuid.NewString(), "reply-placeholder", `["not","an","object"]`)
	poisonCase(t, e, "undecodable", nil, echoRoute, bad, "undecodable", rpc.CodeInvalidArgument)
}

func rpcPoisonNotJSON(t *testing.T, e *rpcEnv) {
	bad := rawRequest("", uuid.NewString(), "reply-placeholder", `{not json at all`)
	poisonCase(t, e, "notjson", nil, echoRoute, bad, "undecodable", rpc.CodeInvalidArgument)
}

func rpcPoisonUnknownRoute(t *testing.T, e *rpcEnv) {
	bad := rawRequest("", uuid.NewString(), "reply-placeholder", `{}`, transport.Header{Key: rpc.HeaderMethod, Value: "nope"})
	poisonCase(t, e, "route", nil, func(s *rpc.Server, topic string) {
		s.HandleFunc(topic+"/yes", func(context.Context, *rpc.Request) (any, error) { return nil, nil })
	}, bad, "unknown_route", rpc.CodeUnimplemented)
}

func rpcPoisonOversize(t *testing.T, e *rpcEnv) {
	bad := rawRequest("", uuid.NewString(), "reply-placeholder", `{"text":"`+strings.Repeat("x", 300)+`"}`)
	poisonCase(t, e, "oversize", []rpc.ServerOption{rpc.WithMaxPayload(256)}, echoRoute, bad, "oversize", rpc.CodeResourceExhausted)
}

func rpcRetryable(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("retry")
	var attempts atomic.Int64
	s := e.server(trs[1], "srv", rpc.WithRetry(4, 5*time.Millisecond))
	rpc.Handle(s, topic, func(ctx context.Context, _ int) (int64, error) {
		n := attempts.Add(1)
		if n < 3 {
			return 0, rpc.Retryable(rpc.Errorf(rpc.CodeUnavailable, "database busy"))
		}
		return n, nil
	})
	e.serve(s)
	c := e.client(trs[0], "cli")
	out, err := rpc.Call[int64](ctxT(t, 10*time.Second), c, topic, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(3), out, "succeeded on the third attempt")
	assert.Zero(t, s.Stats().DeadLettered)
}

func rpcRetriesExhausted(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("exhaust")
	var attempts atomic.Int64
	s := e.server(trs[1], "srv", rpc.WithRetry(3, 5*time.Millisecond))
	rpc.Handle(s, topic, func(ctx context.Context, _ int) (int, error) {
		attempts.Add(1)
		return 0, rpc.Retryable(rpc.Errorf(rpc.CodeUnavailable, "database down"))
	})
	e.serve(s)
	nextDLQ := e.reader(trs[0], topic+rpc.DeadLetterSuffix)
	c := e.client(trs[0], "cli")
	_, err := c.Call(ctxT(t, 10*time.Second), topic, 1)
	require.Error(t, err)
	assert.Equal(t, rpc.CodeUnavailable, rpc.CodeOf(err))
	assert.Contains(t, err.Error(), "database down")
	assert.Equal(t, int64(3), attempts.Load())
	d := nextDLQ(1)[0]
	assert.Equal(t, "retries_exhausted", header(d, rpc.HeaderDLQReason))
}

func rpcKeyOrdering(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 2)
	topic := e.topic("ordered")
	var mu sync.Mutex
	seen := map[string][]int{}
	var total atomic.Int64
	s := e.server(trs[1], "srv", rpc.WithKeyOrdering(), rpc.WithConcurrency(4))
	rpc.Handle(s, topic, func(ctx context.Context, in echoReq) (int, error) {
		mu.Lock()
		seen[in.Text] = append(seen[in.Text], in.N)
		mu.Unlock()
		total.Add(1)
		return 0, nil
	})
	c := e.client(trs[0], "cli")
	const perKey = 50
	keys := []string{"a", "b", "c", "d", "e"}
	// Written before the server starts, so it reads them in big batches.
	for i := range perKey {
		for _, k := range keys {
			require.NoError(t, c.Notify(ctxT(t, 5*time.Second), topic, echoReq{Text: k, N: i}, rpc.WithKey(k)))
		}
	}
	e.serve(s)
	require.Eventually(t, func() bool { return total.Load() == int64(perKey*len(keys)) }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		want := make([]int, perKey)
		for i := range want {
			want[i] = i
		}
		assert.Equal(t, want, seen[k], "key %s handled in order", k)
	}
}

func rpcNoticeDedup(t *testing.T, e *rpcEnv) {
	trs := e.newTransports(t, 1)
	c := e.client(trs[0], "cli")
	notices := make(chan string, 8)
	require.NoError(t, c.OnNotice(func(ctx context.Context, r *rpc.Reply) error {
		notices <- r.CorrelationID
		return nil
	}))
	// Two completion notices for one request (a server that crashed after
	// replying and before committing answers it again): delivered once.
	id := uuid.NewString()
	notice := func() transport.Message {
		return transport.Message{Topic: e.prefix + "-cli.notices", Key: id, Value: []byte(`"done"`), Headers: []transport.Header{
			{Key: rpc.HeaderVersion, Value: "1"}, {Key: rpc.HeaderID, Value: uuid.NewString()},
			{Key: rpc.HeaderKind, Value: "reply"}, {Key: rpc.HeaderCorrelationID, Value: id},
		}}
	}
	_, err := trs[0].Produce(ctxT(t, 5*time.Second), notice(), notice())
	require.NoError(t, err)
	select {
	case got := <-notices:
		assert.Equal(t, id, got)
	case <-time.After(10 * time.Second):
		t.Fatal("notice not delivered")
	}
	require.Eventually(t, func() bool { return c.Stats().DuplicateNotices == 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Empty(t, notices)
}

// logRecorder is a slog.Handler that keeps every record, for cases that
// check what the server logged.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) find(msg string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}
