package rpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kafkarpc/kafkarpc/otelrpc"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// b12Nonce is the payload of the calls of TestBreak12ConcurrentCallsMixedOptions.
type b12Nonce struct {
	N     string `json:"n"`
	Sleep int    `json:"sleep,omitempty"` // the handler's work, ms
}

// b12Expect is what one request record should carry: its headers' keys in
// order, and the values of the call's own headers.
type b12Expect struct {
	keys   []string
	custom map[string]string
	kind   rpc.Kind
	// timeout is the first copy's rpc-timeout-ms ("" when none): the
	// call's WithTimeout, whole.
	timeout string
}

// doubleObserver adds two headers to every request (one more than the
// room the request's array keeps for an Observer) and replaces a third.
type doubleObserver struct{ nopObs }

func (doubleObserver) CallStarted(_ context.Context, m *transport.Message) func(*rpc.Reply, error) {
	id, _ := m.Header(rpc.HeaderID)
	for i := range m.Headers {
		if m.Headers[i].Key == "x-replace" {
			m.Headers[i].Value = "replaced-" + id
		}
	}
	m.Headers = append(m.Headers, transport.Header{Key: "x-obs-1", Value: id}, transport.Header{Key: "x-obs-2", Value: id})
	return func(*rpc.Reply, error) {}
}

// nopObs observes nothing.
type nopObs struct{}

func (nopObs) CallStarted(context.Context, *transport.Message) func(*rpc.Reply, error) {
	return func(*rpc.Reply, error) {}
}

func (nopObs) HandleStarted(ctx context.Context, _ *rpc.Request) (context.Context, string, func(error)) {
	return ctx, "", func(error) {}
}

func (nopObs) Counted(rpc.Event) {}

// TestBreak12ConcurrentCallsMixedOptions runs Call, typed Call, Send and
// Notify concurrently from three clients (no Observer, otelrpc, one adding
// two headers and rewriting a third), each with its own mix of every
// CallOption that writes a header (method, key, timeout, headers, rpc-*
// ones, empty ones, a traceparent), some long enough for WithResend to
// send them again, while callers rewrite the Replies they got. Every
// request record on the broker must carry exactly its own call's headers
// (a resent copy: the same but a smaller timeout), the server must have
// seen them, and every reply and dedup marker must be as the server wrote
// it (no caller's rewrite).
func TestBreak12ConcurrentCallsMixedOptions(t *testing.T) {
	b := newBroker(t, memory.WithTopic("svc", 3), memory.WithTopic("cli.notices", 1))
	s, err := rpc.NewServer(b, rpc.WithName("srv"), silent, rpc.WithConcurrency(8))
	require.NoError(t, err)
	s.HandleFunc("svc", func(ctx context.Context, r *rpc.Request) (any, error) {
		var n b12Nonce
		if err := json.Unmarshal(r.Value, &n); err != nil {
			return nil, err
		}
		if n.Sleep > 0 {
			// Slow work, so that the caller's WithResend sends the request again.
			time.Sleep(time.Duration(n.Sleep) * time.Millisecond)
		}
		hs := make([][2]string, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = [2]string{h.Key, h.Value}
		}
		return hs, nil
	})
	serveT(t, s)

	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	otel, err := otelrpc.New(otelrpc.WithTracerProvider(tp))
	require.NoError(t, err)
	observers := []struct {
		name  string
		obs   rpc.Observer
		extra []string // header keys the Observer adds
	}{
		{"plain", nil, nil},
		{"otel", otel, []string{rpc.HeaderTraceparent}},
		{"double", doubleObserver{}, []string{"x-obs-1", "x-obs-2"}},
	}
	var (
		mu     sync.Mutex
		expect = map[string]b12Expect{}
	)
	var wg sync.WaitGroup
	for ci, o := range observers {
		opts := []rpc.ClientOption{rpc.WithName("cli"), silent, rpc.WithReplyTopic("replies." + o.name), rpc.WithResend(40 * time.Millisecond)}
		if o.obs != nil {
			opts = append(opts, rpc.WithObserver(o.obs))
		}
		c, err := rpc.NewClient(b, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 40 {
					nonce := fmt.Sprintf("%d-%d-%d", ci, g, i)
					payload := b12Nonce{N: nonce}
					if i%13 == 5 {
						payload.Sleep = 100
					}
					var opts []rpc.CallOption
					custom := map[string]string{}
					var customKeys []string
					method := ""
					if i%3 == 0 {
						method = "m" + nonce
						opts = append(opts, rpc.WithMethod(method))
					}
					if i%4 == 1 {
						opts = append(opts, rpc.WithKey("k"+nonce))
					}
					timeout := ""
					if i%2 == 0 {
						opts = append(opts, rpc.WithTimeout(7*time.Second))
						timeout = "7000"
					}
					for h := range i % 7 {
						k := "x-h" + strconv.Itoa(h)
						custom[k] = k + "=" + nonce
						customKeys = append(customKeys, k)
						opts = append(opts, rpc.WithHeader(k, custom[k]))
					}
					// Not written: an rpc-* header and an empty value.
					opts = append(opts, rpc.WithHeader(rpc.HeaderID, "forged"), rpc.WithHeader("x-empty", ""))
					if i%5 == 2 {
						custom["x-replace"] = "mine-" + nonce
						customKeys = append(customKeys, "x-replace")
						opts = append(opts, rpc.WithHeader("x-replace", custom["x-replace"]))
					}
					if i%6 == 3 && o.name == "otel" {
						// Replaced by the Observer's, not sent twice.
						opts = append(opts, rpc.WithHeader(rpc.HeaderTraceparent, b12TP))
						customKeys = append(customKeys, rpc.HeaderTraceparent)
					}
					kind := rpc.KindRequest
					call := i % 5 // 0, 1: Call; 2: typed Call; 3: Send; 4: Notify
					replyTo := "replies." + o.name
					switch call {
					case 3:
						replyTo = "cli.notices"
					case 4:
						kind, replyTo = rpc.KindNotify, ""
						timeout = ""
					}
					if call < 3 && timeout == "" {
						timeout = "30000" // the client's default call timeout
					}
					keys := []string{rpc.HeaderVersion, rpc.HeaderID, rpc.HeaderKind}
					if method != "" {
						keys = append(keys, rpc.HeaderMethod)
					}
					keys = append(keys, rpc.HeaderFrom)
					if replyTo != "" {
						keys = append(keys, rpc.HeaderReplyTo)
					}
					if timeout != "" {
						keys = append(keys, rpc.HeaderTimeoutMs)
					}
					keys = append(keys, rpc.HeaderContentType)
					keys = append(keys, customKeys...)
					for _, k := range o.extra {
						if !slices.Contains(keys, k) {
							keys = append(keys, k)
						}
					}
					if o.name == "double" && custom["x-replace"] != "" {
						custom["x-replace"] = "" // rewritten by the Observer: checked apart
					}
					mu.Lock()
					expect[nonce] = b12Expect{keys: keys, custom: custom, kind: kind, timeout: timeout}
					mu.Unlock()

					ctx := context.Background()
					switch call {
					case 0, 1:
						r, err := c.Call(ctx, "svc", payload, opts...)
						if !assertNoErr(t, err, nonce) {
							return
						}
						var seen [][2]string
						if !assertNoErr(t, json.Unmarshal(r.Value, &seen), nonce) {
							return
						}
						checkSeenHeaders(t, nonce, keys, custom, seen)
						// The caller's own: rewrite every byte of it, and
						// grow its headers.
						for j := range r.Headers {
							r.Headers[j].Value = "caller-rewrite"
						}
						for j := range r.Value {
							r.Value[j] = '#'
						}
						r.Headers = append(r.Headers, transport.Header{Key: "x-caller", Value: "caller-rewrite"})
					case 2:
						seen, err := rpc.Call[[][2]string](ctx, c, "svc", payload, opts...)
						if !assertNoErr(t, err, nonce) {
							return
						}
						checkSeenHeaders(t, nonce, keys, custom, seen)
					case 3:
						_, err := c.Send(ctx, "svc", payload, opts...)
						assertNoErr(t, err, nonce)
					case 4:
						assertNoErr(t, c.Notify(ctx, "svc", payload, opts...), nonce)
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every request record, first copies and resent ones.
	copies := map[string]int{}
	resent := 0
	for p := int32(0); p < 3; p++ {
		for _, m := range b12Partition(t, b, "svc", p) {
			var n b12Nonce
			require.NoError(t, json.Unmarshal(m.Value, &n))
			e, ok := expect[n.N]
			require.True(t, ok, "request %s", n.N)
			copies[n.N]++
			keys := make([]string, len(m.Headers))
			for j, h := range m.Headers {
				keys[j] = h.Key
			}
			require.Equal(t, e.keys, keys, "request %s: its headers", n.N)
			id, _ := m.Header(rpc.HeaderID)
			require.NotEqual(t, "forged", id)
			kind, _ := m.Header(rpc.HeaderKind)
			require.Equal(t, string(e.kind), kind)
			for k, v := range e.custom {
				got, _ := m.Header(k)
				if v == "" {
					require.Equal(t, "replaced-"+id, got, "request %s: %s rewritten by the Observer", n.N, k)
					continue
				}
				require.Equal(t, v, got, "request %s: %s", n.N, k)
			}
			if x, ok := m.Header("x-obs-1"); ok {
				require.Equal(t, id, x, "request %s: the Observer's header of this call", n.N)
			}
			if e.timeout != "" {
				ms, _ := m.Header(rpc.HeaderTimeoutMs)
				if copies[n.N] == 1 {
					require.Equal(t, e.timeout, ms, "request %s: the first copy's timeout, untouched by resends", n.N)
				} else {
					resent++
					v, err := strconv.Atoi(ms)
					require.NoError(t, err)
					w, _ := strconv.Atoi(e.timeout)
					require.Less(t, v, w, "request %s: a resent copy says what is left", n.N)
				}
			}
		}
	}
	require.Len(t, copies, len(expect), "every call's request")
	require.Positive(t, resent, "some requests were resent")

	// Every reply and marker as the server wrote it.
	for _, topic := range []string{"replies.plain", "replies.otel", "replies.double", "cli.notices", "srv.handled"} {
		for _, m := range b12Partition(t, b, topic, 0) {
			for _, h := range m.Headers {
				require.NotEqual(t, "caller-rewrite", h.Value, "%s@%d: a caller's rewrite", topic, m.Offset)
				require.NotEqual(t, "x-caller", h.Key, "%s@%d: a caller's header", topic, m.Offset)
			}
			require.NotContains(t, string(m.Value), "##", "%s@%d: a caller's rewrite", topic, m.Offset)
		}
	}
}

// b12Partition returns every record of a partition.
func b12Partition(t *testing.T, b *memory.Broker, topic string, p int32) []transport.Message {
	t.Helper()
	_, latest, err := b.Offsets(topic, p)
	require.NoError(t, err)
	var all []transport.Message
	for off := int64(0); off < latest; {
		ms, err := b.Fetch(context.Background(), topic, p, off, 0)
		require.NoError(t, err)
		all = append(all, ms...)
		off = ms[len(ms)-1].Offset + 1
	}
	return all
}

// assertNoErr reports err as the failure of call nonce.
func assertNoErr(t *testing.T, err error, nonce string) bool {
	t.Helper()
	if err != nil {
		t.Errorf("call %s: %v", nonce, err)
		return false
	}
	return true
}

// checkSeenHeaders holds the headers a handler saw to the call's.
func checkSeenHeaders(t *testing.T, nonce string, keys []string, custom map[string]string, seen [][2]string) {
	t.Helper()
	got := make([]string, len(seen))
	for i, h := range seen {
		got[i] = h[0]
		if v, ok := custom[h[0]]; ok && v != "" && v != h[1] {
			t.Errorf("call %s: the server saw %s=%q, want %q", nonce, h[0], h[1], v)
		}
	}
	if !slices.Equal(keys, got) {
		t.Errorf("call %s: the server saw headers %v, want %v", nonce, got, keys)
	}
}

// TestBreak12CallReplyFromAForeignServer: a reply with more headers than
// the room Call allocates with its Reply (7) is copied apart, whole; one
// with as many or fewer fits it. Either way the Reply is the caller's: its
// headers rewritten or appended to leave the record on the broker as the
// replier wrote it. The replier is a raw consumer of the request topic.
func TestBreak12CallReplyFromAForeignServer(t *testing.T) {
	b := newBroker(t, memory.WithTopic("foreign", 1))
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := b.Subscribe(ctx, transport.Subscription{Group: "raw", Topics: []string{"foreign"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	done := make(chan struct{})
	defer func() { cancel(); <-done; cons.Close() }()
	go func() {
		defer close(done)
		for {
			ms, err := cons.Poll(ctx)
			if err != nil {
				return
			}
			for _, m := range ms {
				id, _ := m.Header(rpc.HeaderID)
				replyTo, _ := m.Header(rpc.HeaderReplyTo)
				var n int
				_ = json.Unmarshal(m.Value, &n)
				hs := []transport.Header{{Key: rpc.HeaderVersion, Value: "1"}, {Key: rpc.HeaderID, Value: "r-" + id},
					{Key: rpc.HeaderKind, Value: "reply"}, {Key: rpc.HeaderCorrelationID, Value: id}}
				for j := range n - len(hs) {
					hs = append(hs, transport.Header{Key: "x-r" + strconv.Itoa(j), Value: strconv.Itoa(j)})
				}
				if _, err := b.Produce(ctx, transport.Message{Topic: replyTo, Key: id, Value: []byte(strconv.Itoa(n)), Headers: hs}); err != nil {
					return
				}
			}
		}
	}()
	c := newClient(t, b)
	for _, n := range []int{4, 6, 7, 8, 12, 40} {
		r, err := c.Call(context.Background(), "foreign", n, rpc.WithTimeout(10*time.Second))
		require.NoError(t, err, "%d headers", n)
		require.Len(t, r.Headers, n)
		require.Equal(t, strconv.Itoa(n), string(r.Value))
		_, latest, err := b.Offsets("cli.replies", 0)
		require.NoError(t, err)
		recs, err := b.Fetch(context.Background(), "cli.replies", 0, latest-1, 1)
		require.NoError(t, err)
		stored := slices.Clone(recs[0].Headers)
		require.Equal(t, stored, r.Headers)
		for j := range r.Headers {
			r.Headers[j].Value = "caller"
		}
		r.Headers = append(r.Headers, transport.Header{Key: "x-caller"})
		r.Value[0] = '#'
		require.Equal(t, stored, recs[0].Headers, "%d headers: the record as written", n)
		require.Equal(t, strconv.Itoa(n), string(recs[0].Value))
	}
}

// TestBreak12CallErrorDetailsAreTheCallersOwn: the *Error a Call returns
// for an error reply is the caller's as its Reply is: rewriting the bytes
// of its Details leaves the reply record alone. Before the fix, on the
// embedded broker Details was the broker's stored reply value itself
// (Reply.fill keeps m.Value), so a caller rewriting it rewrote the reply
// record every later reader of the reply topic gets (the untyped and the
// typed Call alike).
func TestBreak12CallErrorDetailsAreTheCallersOwn(t *testing.T) {
	b := newBroker(t)
	s, err := rpc.NewServer(b, rpc.WithName("srv"), silent)
	require.NoError(t, err)
	rpc.Handle(s, "svc", func(ctx context.Context, n int) (int, error) {
		return 0, rpc.Errorf(rpc.CodeNotFound, "nope %d", n).WithDetails(json.RawMessage(`{"why":"gone"}`))
	})
	serveT(t, s)
	c := newClient(t, b)
	for i, typed := range []bool{false, true} {
		if typed {
			_, err = rpc.Call[int](context.Background(), c, "svc", i, rpc.WithTimeout(5*time.Second))
		} else {
			_, err = c.Call(context.Background(), "svc", i, rpc.WithTimeout(5*time.Second))
		}
		var e *rpc.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, rpc.CodeNotFound, e.Code())
		d := e.Details()
		require.JSONEq(t, `{"why":"gone"}`, string(d))
		for j := range d {
			d[j] = '#'
		}
		recs := b12Partition(t, b, "cli.replies", 0)
		require.Len(t, recs, i+1)
		require.Equal(t, `{"why":"gone"}`, string(recs[i].Value), "typed=%v: the reply record as the server wrote it", typed)
	}
}
