package upstash

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// The hostile-server tests (issue 15): an httptest.Server on loopback that
// misbehaves in one way per mode, and a client that must stay within its
// bounds and say what happened. Each case asserts the robust behaviour.

// hostile starts a loopback server that answers every request with mode.
func hostile(t *testing.T, mode http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(mode)
	t.Cleanup(s.Close)
	return s
}

// hostileTransport is a client of s with credentials and quick retries.
func hostileTransport(t *testing.T, s *httptest.Server, opts ...Option) *Transport {
	t.Helper()
	tr, err := New(append([]Option{WithURL(s.URL), WithCredentials("user", "secret"), fastBackoff,
		WithPollWindow(200 * time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// redirectTo answers every request with status and a Location of target.
func redirectTo(status int, target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.Path, status)
	}
}

// Findings 5 and 6: a redirect is refused, whatever its status, with an
// error naming the target; the target (same host, another port) never sees
// a request, so it never sees the credentials, and a redirected produce is
// an error, not a success with the target's offset.
func TestHostileRedirectRefused(t *testing.T) {
	var reached, withAuth atomic.Int64
	target := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		if r.Header.Get("Authorization") != "" {
			withAuth.Add(1)
		}
		_, _ = w.Write([]byte(`[{"topic":"t","partition":0,"offset":41,"timestamp":1}]`))
	})
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := hostile(t, redirectTo(status, target.URL))
			tr := hostileTransport(t, s)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			out, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
			require.Error(t, err, "a redirected produce must fail, got %+v", out)
			assert.Contains(t, err.Error(), target.URL+"/produce", "the error names the redirect target")
			assert.ErrorIs(t, err, ErrRedirect)
			_, err = tr.Tail(ctx, "t")
			require.ErrorIs(t, err, ErrRedirect)
		})
	}
	assert.Zero(t, reached.Load(), "the redirect target got requests")
	assert.Zero(t, withAuth.Load(), "the redirect target got the credentials")
}

// A client given with WithHTTPClient refuses redirects too: the transport
// uses a copy of it whose CheckRedirect refuses them.
func TestHostileRedirectRefusedWithOwnClient(t *testing.T) {
	var reached atomic.Int64
	target := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = w.Write([]byte(`{}`))
	})
	s := hostile(t, redirectTo(http.StatusTemporaryRedirect, target.URL))
	own := &http.Client{}
	tr := hostileTransport(t, s, WithHTTPClient(own))
	_, err := tr.Tail(t.Context(), "t")
	require.ErrorIs(t, err, ErrRedirect)
	assert.True(t, strings.Contains(err.Error(), target.URL), "error %q names the target", err)
	assert.Zero(t, reached.Load())
	assert.Nil(t, own.CheckRedirect, "the caller's client is not modified")
}

// childEnv names the test a child process of the test binary runs (see
// inChild).
const childEnv = "UPSTASH_HOSTILE_CHILD"

// inChild runs the calling test again in a child process of the test
// binary, under a soft memory limit (GOMEMLIMIT) and a hard heap limit
// enforced by a watchdog, so a regression to unbounded memory fails this
// test instead of killing the suite. In the parent it waits for the child
// and returns false; in the child it returns true and the caller runs the
// body. The child logs its peak heap.
func inChild(t *testing.T, hardLimit uint64) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		debug.SetMemoryLimit(int64(hardLimit / 2))
		done, exited := make(chan struct{}), make(chan struct{})
		var peak atomic.Uint64
		go func() {
			defer close(exited)
			watchHeap(hardLimit, &peak, done)
		}()
		t.Cleanup(func() {
			close(done)
			<-exited
			t.Logf("peak heap %d KiB", peak.Load()>>10)
		})
		return true
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), fmt.Sprintf("GOMEMLIMIT=%dMiB", hardLimit>>21))
	out, err := cmd.CombinedOutput()
	text := string(out)
	if len(text) > 4000 {
		text = "..." + text[len(text)-4000:]
	}
	require.NoError(t, err, "child process failed:\n%s", text)
	require.Contains(t, text, "--- PASS: "+t.Name(), "child output:\n%s", text)
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "peak heap") {
			t.Log("child:", strings.TrimSpace(line))
		}
	}
	return false
}

// watchHeap samples the live heap until done, recording the peak, and ends
// the process with status 3 when it passes hardLimit.
func watchHeap(hardLimit uint64, peak *atomic.Uint64, done <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		heap := sample[0].Value.Uint64()
		if heap > peak.Load() {
			peak.Store(heap)
		}
		if heap > hardLimit {
			fmt.Fprintf(os.Stderr, "heap %d MiB is over the hard limit of %d MiB\n", heap>>20, hardLimit>>20)
			os.Exit(3)
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// Finding 1: a server claiming absurd partition counts cannot make the
// client build one entry per claimed partition: Tail refuses a topic over
// the partition cap at once, with an error naming the count, and a topic
// within it is read with requests sized by its partitions only, whatever
// the other topics claim.
func TestHostilePartitionCount(t *testing.T) {
	if !inChild(t, 128<<20) {
		return
	}
	var offsetsBody atomic.Int64
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/topics":
			_, _ = io.WriteString(w, `{"c.replies":2147483647,"mid":1000000,"small":3}`)
		case "/offsets/latest":
			body, _ := io.ReadAll(r.Body)
			offsetsBody.Store(int64(len(body)))
			_, _ = io.WriteString(w, `[{"topic":"small","partition":0,"offset":1},{"topic":"small","partition":1,"offset":1},{"topic":"small","partition":2,"offset":1}]`)
		case "/fetch":
			_, _ = io.WriteString(w, `[]`)
		default:
			http.NotFound(w, r)
		}
	})
	tr := hostileTransport(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, topic := range []string{"c.replies", "mid"} {
		_, err := tr.Tail(ctx, topic)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "partitions")
		assert.Contains(t, err.Error(), fmt.Sprint(DefaultMaxPartitions))
	}
	tl, err := tr.Tail(ctx, "small")
	require.NoError(t, err)
	defer tl.Close()
	assert.Less(t, offsetsBody.Load(), int64(200), "POST /offsets/latest asks for the 3 partitions of the tailed topic")
	_, err = tl.Poll(ctx)
	require.NoError(t, err)

	tr2 := hostileTransport(t, s, WithMaxPartitions(2))
	_, err = tr2.Tail(ctx, "small")
	require.ErrorContains(t, err, "3 partitions")
}

// answers is a server mode answering by path prefix with fixed bodies
// (status 200); other paths get 404.
func answers(bodies map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for prefix, body := range bodies {
			if strings.HasPrefix(r.URL.Path, prefix) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, body)
				return
			}
		}
		http.Error(w, `{"error":"not found","status":404}`, http.StatusNotFound)
	}
}

// foreignRecords are records a consumer of topic "orders" with at most 4
// partitions never asked for, and one it did.
const foreignRecords = `[
 {"topic":"payments","partition":0,"offset":8,"value":"unsubscribed topic"},
 {"topic":"","partition":0,"offset":8,"value":"no topic"},
 {"topic":"orders","partition":-1,"offset":8,"value":"negative partition"},
 {"topic":"orders","partition":7,"offset":8,"value":"partition over the cap"},
 {"topic":"orders","partition":0,"offset":-4,"value":"negative offset"},
 {"topic":"orders","partition":0,"offset":9223372036854775807,"value":"last offset"},
 {"topic":"orders","partition":1,"offset":5,"value":"good"}]`

// Finding 7: the group consumer passes on only records of its topics, in
// a partition in range, at a non-negative offset; the rest are dropped and
// counted in Stats.
func TestHostileForeignRecordsConsumer(t *testing.T) {
	s := hostile(t, answers(map[string]string{
		"/consume/":         foreignRecords,
		"/commit/":          `{"result":"Success","status":200}`,
		"/delete-consumer/": `{"result":"Success","status":200}`,
	}))
	tr := hostileTransport(t, s, WithMaxPartitions(4))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"orders"}})
	require.NoError(t, err)
	defer c.Close()
	got, err := c.Poll(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "good", string(got[0].Value))
	assert.Equal(t, int64(6), tr.Stats().DroppedRecords)
}

// Finding 7, Tail: records of other topics, other partitions, below the
// position asked for or at an offset that would wrap the position are
// dropped and counted; an end offset that would wrap is refused.
func TestHostileForeignRecordsTail(t *testing.T) {
	s := hostile(t, answers(map[string]string{
		"/topics":         `{"orders":2}`,
		"/offsets/latest": `[{"topic":"orders","partition":0,"offset":3},{"topic":"orders","partition":1,"offset":5}]`,
		"/fetch": `[{"topic":"orders","partition":0,"offset":2,"value":"below the position"},
			{"topic":"payments","partition":0,"offset":3,"value":"other topic"},
			{"topic":"orders","partition":2,"offset":3,"value":"other partition"},
			{"topic":"orders","partition":0,"offset":9223372036854775807,"value":"wraps"},
			{"topic":"orders","partition":1,"offset":5,"value":"good"}]`,
	}))
	tr := hostileTransport(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	tl, err := tr.Tail(ctx, "orders")
	require.NoError(t, err)
	defer tl.Close()
	got, err := tl.Poll(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "good", string(got[0].Value))
	assert.Equal(t, int64(4), tr.Stats().DroppedRecords)

	wrap := hostile(t, answers(map[string]string{
		"/topics":         `{"orders":1}`,
		"/offsets/latest": `[{"topic":"orders","partition":0,"offset":9223372036854775807}]`,
	}))
	_, err = hostileTransport(t, wrap).Tail(ctx, "orders")
	require.ErrorContains(t, err, "9223372036854775807")
}

// Finding 8: a produce answer inconsistent with what was sent is an error:
// another partition than the pinned one, a negative partition or offset,
// offsets going backwards within a partition (results reordered between
// the messages or coalesced callers of one request).
func TestHostileProduceAnswer(t *testing.T) {
	pinned := transport.Message{Topic: "t", Partition: 1, ManualPartition: true, Value: []byte("v")}
	free := transport.Message{Topic: "t", Value: []byte("v")}
	for _, tc := range []struct {
		name, answer string
		msgs         []transport.Message
	}{
		{"pinned partition moved", `[{"topic":"t","partition":0,"offset":1}]`, []transport.Message{pinned}},
		{"negative partition", `[{"topic":"t","partition":-1,"offset":1}]`, []transport.Message{free}},
		{"negative offset", `[{"topic":"t","partition":0,"offset":-4}]`, []transport.Message{free}},
		{"reordered", `[{"topic":"t","partition":0,"offset":6},{"topic":"t","partition":0,"offset":5}]`, []transport.Message{free, free}},
		{"repeated offset", `[{"topic":"t","partition":0,"offset":5},{"topic":"t","partition":0,"offset":5}]`, []transport.Message{free, free}},
		{"too few results", `[]`, []transport.Message{free}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hostile(t, answers(map[string]string{"/produce": tc.answer}))
			tr := hostileTransport(t, s)
			out, err := tr.Produce(t.Context(), tc.msgs...)
			require.Error(t, err, "accepted %+v", out)
			assert.Contains(t, err.Error(), "POST /produce")
		})
	}
	s := hostile(t, answers(map[string]string{"/produce": `[{"topic":"t","partition":1,"offset":5},{"topic":"t","partition":1,"offset":6}]`}))
	out, err := hostileTransport(t, s).Produce(t.Context(), pinned, pinned)
	require.NoError(t, err)
	assert.Equal(t, []int64{5, 6}, []int64{out[0].Offset, out[1].Offset})
}

// status is a server mode answering every request with code, a JSON error
// body and, when set, a Retry-After header.
func status(code int, retryAfter string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `{"error":"%s","status":%d}`, http.StatusText(code), code)
	}
}

// Finding 9: under 503 and 429 storms a Produce whose deadline passes
// returns an error matching context.DeadlineExceeded, never
// context.Canceled; and one whose Retry-After is past its deadline gives up
// at once, saying both.
func TestHostileDeadlineIsDeadline(t *testing.T) {
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			tr := hostileTransport(t, hostile(t, status(code, "")), WithBackoff(Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}))
			for range 20 {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
				cancel()
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.NotErrorIs(t, err, context.Canceled)
			}
		})
	}
	tr := hostileTransport(t, hostile(t, status(http.StatusServiceUnavailable, "10")))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
	assert.Less(t, time.Since(start), 2*time.Second, "gave up at the Retry-After past the deadline")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var he *Error
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusServiceUnavailable, he.Status)
}

// Finding 10: 401 and 403 are permanent: not retried, matched by
// ErrUnauthenticated and ErrPermissionDenied, and by transport.ErrInvalid,
// which rpc does not retry either.
func TestHostileAuthIsPermanent(t *testing.T) {
	for code, want := range map[int]error{http.StatusUnauthorized: ErrUnauthenticated, http.StatusForbidden: ErrPermissionDenied} {
		var requests atomic.Int64
		s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			status(code, "")(w, r)
		})
		tr := hostileTransport(t, s)
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
		require.ErrorIs(t, err, want)
		require.ErrorIs(t, err, transport.ErrInvalid)
		assert.Equal(t, int64(1), requests.Load(), "a %d is not retried", code)
	}
}

// rpcServer answers as a server of topics "replies" and "svc", one
// partition each, whose tail of "replies" stays empty; every other request
// (the Call's produce) goes to other.
func rpcServer(other http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/topics":
			_, _ = io.WriteString(w, `{"replies":1,"svc":1}`)
		case "/offsets/latest":
			_, _ = io.WriteString(w, `[{"topic":"replies","partition":0,"offset":0}]`)
		case "/fetch":
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, `[]`)
		default:
			other(w, r)
		}
	}
}

// Finding 10 through rpc: a Call against a server answering 401 to produce
// fails at once, not after retrying into its deadline.
func TestHostileAuthRPCCall(t *testing.T) {
	var produces atomic.Int64
	s := hostile(t, rpcServer(func(w http.ResponseWriter, r *http.Request) {
		produces.Add(1)
		status(http.StatusUnauthorized, "")(w, r)
	}))
	tr := hostileTransport(t, s)
	c, err := rpc.NewClient(tr, rpc.WithReplyTopic("replies"), rpc.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Call(ctx, "svc", "hi")
	require.Error(t, err)
	assert.Less(t, time.Since(start), time.Second)
	assert.NotEqual(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err), "%v", err)
	assert.ErrorIs(t, err, ErrUnauthenticated)
	assert.Equal(t, int64(1), produces.Load())
	assert.Equal(t, rpc.CodeUnauthenticated, rpc.CodeOf(err), "%v", err)
}

// Finding 12: a 200 whose body is {"error": ...} is an error on commit and
// on delete-consumer.
func TestHostileErrorBodyWith200(t *testing.T) {
	s := hostile(t, answers(map[string]string{
		"/consume/":         `[{"topic":"orders","partition":0,"offset":1,"value":"v"}]`,
		"/commit/":          `{"error":"partition not assigned","status":409}`,
		"/delete-consumer/": `{"error":"cannot delete","status":400}`,
	}))
	tr := hostileTransport(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"orders"}})
	require.NoError(t, err)
	got, err := c.Poll(ctx)
	require.NoError(t, err)
	err = c.Commit(ctx, got...)
	require.ErrorIs(t, err, transport.ErrNotAssigned)
	assert.ErrorContains(t, err, "partition not assigned")
	require.ErrorContains(t, c.Close(), "cannot delete")
}

// emptyRecords is a JSON array of n empty objects: 3 bytes a record, each
// of which would decode to a 100+ byte transport.Message.
func emptyRecords(n int) []byte {
	b := bytes.Repeat([]byte(`{},`), n)
	return append(append([]byte("["), b[:len(b)-1]...), ']')
}

// bombServer answers as a server of one topic "orders" with one empty
// partition, except that every consume and fetch answer is bomb.
func bombServer(bomb []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/topics":
			_, _ = io.WriteString(w, `{"orders":1}`)
		case "/offsets/latest":
			_, _ = io.WriteString(w, `[{"topic":"orders","partition":0,"offset":0}]`)
		default:
			_, _ = w.Write(bomb)
		}
	}
}

// Finding 2: decoding a fetch answer costs memory bounded together with
// the bytes read: 16 MiB of [{},{},...] (which used to become 2.1 GiB)
// fails with an error instead of decoding 5.6 million records.
//
// The hard limit leaves room for the body itself (16 MiB read, 16 MiB of
// value arena, the server's copy) and the garbage of slice growth: the
// child peaks at about 240 MiB, an order of magnitude under the 2.1 GiB of
// the unbounded decoder.
func TestHostileDecodeBudget(t *testing.T) {
	if !inChild(t, 512<<20) {
		return
	}
	bomb := emptyRecords(16 << 20 / 3)
	s := hostile(t, bombServer(bomb))
	tr := hostileTransport(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tl, err := tr.Tail(ctx, "orders")
	require.NoError(t, err)
	defer tl.Close()
	_, err = tl.Poll(ctx)
	require.ErrorContains(t, err, "budget")
	require.NoError(t, ctx.Err())
	_, err = tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"orders"}})
	require.ErrorContains(t, err, "budget")
}

// Finding 3: decoding stops when the caller's context ends: Tail.Poll and
// Subscribe given 6 MiB of [{},...] and a 1s deadline return by about the
// deadline with an error, never a success with an expired context.
func TestHostileDecodeDeadline(t *testing.T) {
	if !inChild(t, 256<<20) {
		return
	}
	bomb := emptyRecords(6 << 20 / 3)
	s := hostile(t, bombServer(bomb))
	tr := hostileTransport(t, s)
	tl, err := tr.Tail(t.Context(), "orders")
	require.NoError(t, err)
	defer tl.Close()
	for name, op := range map[string]func(context.Context) error{
		"Tail.Poll": func(ctx context.Context) error { _, err := tl.Poll(ctx); return err },
		"Subscribe": func(ctx context.Context) error {
			_, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"orders"}})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		start := time.Now()
		err := op(ctx)
		took := time.Since(start)
		cancel()
		require.Error(t, err, name)
		assert.Less(t, took, 2*time.Second, "%s returned %v after the deadline", name, took-time.Second)
	}
}

// Findings 1 and 2, answers sized by their request: a produce answer far
// longer than the messages sent, or a GET /topics listing of many MiB, is
// refused as oversize instead of being decoded.
func TestHostileOversizeSmallAnswers(t *testing.T) {
	huge := `[` + strings.Repeat(`{"topic":"t","partition":0,"offset":1},`, 100_000) + `{}]`
	tr := hostileTransport(t, hostile(t, answers(map[string]string{"/produce": huge})))
	_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.ErrorContains(t, err, "response over")

	topics := `{` + strings.Repeat(`"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":1,`, 700_000) + `"t":1}` // about 38 MB, over the 32 MiB cap
	tr = hostileTransport(t, hostile(t, answers(map[string]string{"/topics": topics})))
	_, err = tr.Tail(t.Context(), "t")
	require.ErrorContains(t, err, "response over")
}

// Finding 4: a server that never answers cannot hang Tail, Subscribe or
// rpc.NewClient (which passes no deadline of its own) past the setup
// timeout; the error says which bound ended them.
func TestHostileSetupTimeout(t *testing.T) {
	release := make(chan struct{})
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("[")) // a trickle: one byte, then nothing
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before s.Close
	tr := hostileTransport(t, s, WithSetupTimeout(300*time.Millisecond))
	for name, op := range map[string]func() error{
		"Tail": func() error { _, err := tr.Tail(context.Background(), "t"); return err },
		"Subscribe": func() error {
			_, err := tr.Subscribe(context.Background(), transport.Subscription{Group: "g", Topics: []string{"t"}})
			return err
		},
		"rpc.NewClient": func() error { _, err := rpc.NewClient(tr); return err },
	} {
		start := time.Now()
		err := op()
		assert.Less(t, time.Since(start), 3*time.Second, name)
		require.ErrorIs(t, err, context.DeadlineExceeded, name)
		assert.ErrorContains(t, err, "WithSetupTimeout", name)
	}
}

// Finding 9 through rpc: a Call whose produce meets a 503 or 429 storm
// until its 100ms deadline reports deadline_exceeded, never canceled.
func TestHostileDeadlineRPCCall(t *testing.T) {
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		s := hostile(t, rpcServer(status(code, "")))
		tr := hostileTransport(t, s, WithBackoff(Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}))
		c, err := rpc.NewClient(tr, rpc.WithReplyTopic("replies"), rpc.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		for range 10 {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			_, err := c.Call(ctx, "svc", "hi")
			cancel()
			require.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err), "%d: %v", code, err)
		}
		require.NoError(t, c.Close())
	}
}
