package restserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestErrorStatuses pins §11: every error is JSON {"error","status"} with the
// decided status, and the server keeps serving afterwards.
func TestErrorStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 2), memory.WithAutoCreate(false)},
		server: []restserver.Option{restserver.WithMaxMessageBytes(64), restserver.WithMaxBodyBytes(1024)},
	})
	wrongAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":wrong"))
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		contains                 string
	}{
		{"401 no credentials", "GET", "/topics", "", []string{"Authorization", "-"}, 401, "missing credentials"},
		{"401 wrong password", "GET", "/topics", "", []string{"Authorization", wrongAuth}, 401, "invalid credentials"},
		{"401 wrong user", "POST", "/produce/t", `{"value":"x"}`,
			[]string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("someone:"+testPass))}, 401, "invalid"},
		{"401 bearer is not accepted", "GET", "/topics", "", []string{"Authorization", "Bearer " + testPass}, 401, "Basic"},
		{"401 on unknown routes too", "GET", "/nope", "", []string{"Authorization", "-"}, 401, "missing"},
		{"401 webhook query creds wrong", "POST", "/webhook?topic=t&user=" + testUser + "&pass=nope", "x",
			[]string{"Authorization", "-"}, 401, "invalid"},
		{"401 webhook without creds", "POST", "/webhook?topic=t", "x", []string{"Authorization", "-"}, 401, "?user=&pass="},
		{"401 query creds only on the webhook", "GET", "/topics?user=" + testUser + "&pass=" + testPass, "",
			[]string{"Authorization", "-"}, 401, "missing"},
		{"400 malformed JSON", "POST", "/produce/t", `{"value":`, nil, 400, "malformed JSON"},
		{"400 wrong JSON type", "POST", "/produce/t", `{"value":"x","partition":"one"}`, nil, 400, "malformed JSON"},
		{"400 not an object or array", "POST", "/produce/t", `"x"`, nil, 400, "malformed JSON"},
		{"400 empty produce body", "POST", "/produce/t", "", nil, 400, "no message"},
		{"400 empty array", "POST", "/produce", "[]", nil, 400, "no message"},
		{"400 missing value", "POST", "/produce/t", `{"key":"k"}`, nil, 400, "value is required"},
		{"400 missing topic", "POST", "/produce", `[{"value":"a"},{"value":"b"}]`, nil, 400, "message 0: topic is required"},
		{"400 negative partition", "POST", "/produce/t", `{"value":"x","partition":-1}`, nil, 400, "partition"},
		{"400 partition out of range", "POST", "/produce/t", `{"value":"x","partition":7}`, nil, 400, "partition"},
		{"400 consume without topic", "POST", "/consume/g/i", `{"timeout":10}`, nil, 400, "topic"},
		{"400 consume malformed", "POST", "/consume/g/i", `{"topic":`, nil, 400, "malformed JSON"},
		{"400 consume array body", "POST", "/consume/g/i", `["t"]`, nil, 400, "malformed JSON"},
		{"400 negative timeout", "POST", "/consume/g/i", `{"topic":"t","timeout":-1}`, nil, 400, "timeout"},
		{"400 bad query timeout", "GET", "/consume/g/i/t?timeout=soon", "", nil, 400, "timeout"},
		{"400 empty path segment", "POST", "/consume//i", `{"topic":"t"}`, nil, 400, "empty"},
		{"400 fetch without anything", "POST", "/fetch", `{"timeout":10}`, nil, 400, "nothing to fetch"},
		{"400 fetch empty body", "POST", "/fetch", ``, nil, 400, "body is required"},
		{"404 unknown topic (produce, no auto-create)", "POST", "/produce/nope", `{"value":"x"}`, nil, 404, "nope"},
		{"404 unknown topic (GET produce)", "GET", "/produce/nope/x", "", nil, 404, "unknown topic"},
		{"404 unknown topic (produce array)", "POST", "/produce", `[{"topic":"t","value":"a"},{"topic":"nope","value":"b"}]`,
			nil, 404, "nope"},
		{"404 unknown topic (consume)", "GET", "/consume/g/i/nope?timeout=10", "", nil, 404, "nope"},
		{"404 unknown topic (fetch)", "POST", "/fetch", `{"topic":"nope","partition":0,"offset":0}`, nil, 404, "nope"},
		{"404 unknown topic (committed)", "POST", "/committed/g/i", `{"topic":"nope","partition":0}`, nil, 404, "nope"},
		{"404 unknown instance (delete)", "POST", "/delete-consumer/g/ghost", "", nil, 404, "ghost"},
		{"404 unknown instance (commit)", "POST", "/commit/g/ghost", "", nil, 404, "ghost"},
		{"404 unknown route", "GET", "/nope", "", nil, 404, "unknown route"},
		{"404 root", "GET", "/", "", nil, 404, "unknown route"},
		{"404 too many segments", "GET", "/produce/t/a/b", "", nil, 404, "unknown route"},
		{"404 schema registry", "GET", "/schema-registry/subjects", "", nil, 404, "schema registry"},
		{"405 DELETE produce", "DELETE", "/produce/t", "", nil, 405, "GET, POST"},
		{"405 POST produce path form", "POST", "/produce/t/msg", "", nil, 405, "GET"},
		{"405 GET delete-consumer", "GET", "/delete-consumer/g/i", "", nil, 405, "POST, DELETE"},
		{"405 POST topics", "POST", "/topics", "", nil, 405, "GET"},
		{"405 PUT consume", "PUT", "/consume/g/i", "", nil, 405, "GET, POST"},
		{"413 message over the limit", "POST", "/produce/t", fmt.Sprintf(`{"value":%q}`, strings.Repeat("x", 65)),
			nil, 413, "over the limit of 64 bytes"},
		{"413 body over the limit", "POST", "/produce", "[" + strings.Repeat(`{"topic":"t","value":"x"},`, 60) + `{"topic":"t","value":"x"}]`,
			nil, 413, "over the limit of 1024 bytes"},
		{"413 webhook body over the limit", "POST", "/webhook?topic=t", strings.Repeat("x", 2000), nil, 413, "1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.req(tt.method, tt.path, tt.body, tt.hdr...)
			msg := requireErrorBody(t, r, tt.status)
			assert.Contains(t, msg, tt.contains)
			switch tt.status {
			case 401:
				assert.Equal(t, `Basic realm="kafka-rest", charset="UTF-8"`, r.header.Get("WWW-Authenticate"))
				assert.NotContains(t, msg, testPass)
			case 405:
				assert.Equal(t, tt.contains, r.header.Get("Allow"))
			}
			// The server keeps serving.
			assert.Equal(t, `{"t":2}`, e.ok("GET", "/topics", ""))
		})
	}
	assert.Equal(t, int64(0), e.latest("t", 0)+e.latest("t", 1), "no failed request wrote anything")
	assert.GreaterOrEqual(t, e.srv.Stats().Errors, uint64(len(tests)))
}

func TestChunkedBodyOverLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		server: []restserver.Option{restserver.WithMaxBodyBytes(1024)},
	})
	// No Content-Length: the limit is found while reading.
	pr := strings.NewReader("[" + strings.Repeat(`{"value":"x"},`, 200) + `{"value":"x"}]`)
	r, err := http.NewRequest("POST", e.url+"/produce/t", struct{ *strings.Reader }{pr})
	require.NoError(t, err)
	r.SetBasicAuth(testUser, testPass)
	resp, err := e.client.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(t, err)
	requireErrorBody(t, reply{status: resp.StatusCode, header: resp.Header, body: buf.String()}, http.StatusRequestEntityTooLarge)
	assert.Equal(t, int64(0), e.latest("t", 0))
	e.ok("GET", "/topics", "")
}

// faultyBackend fails Produce and Topics with err.
type faultyBackend struct {
	restserver.Backend
	err error
}

func (f faultyBackend) Produce(context.Context, ...transport.Message) ([]transport.Message, error) {
	return nil, f.err
}

func (f faultyBackend) Topics(context.Context) (map[string]int32, error) { return nil, f.err }

func TestBackendFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
	}{
		{errors.New("disk on fire"), http.StatusInternalServerError},
		{fmt.Errorf("broker gone: %w", transport.ErrClosed), http.StatusServiceUnavailable},
		{fmt.Errorf("slow: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{fmt.Errorf("too big: %w", transport.ErrMessageTooLarge), http.StatusRequestEntityTooLarge},
		{fmt.Errorf("bad: %w", transport.ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("which: %w", transport.ErrUnknownTopic), http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{
				broker: []memory.Option{memory.WithTopic("t", 1)},
				wrap:   func(b restserver.Backend) restserver.Backend { return faultyBackend{b, tt.err} },
			})
			msg := requireErrorBody(t, e.req("POST", "/produce/t", `{"value":"x"}`), tt.status)
			if tt.status == http.StatusInternalServerError {
				assert.NotContains(t, msg, tt.err.Error(), "a fault's details stay in the log")
			} else {
				assert.Contains(t, msg, strings.ReplaceAll(tt.err.Error(), "transport: ", ""))
			}
			requireErrorBody(t, e.req("GET", "/topics", ""), tt.status)
			// Other endpoints still work.
			assert.Equal(t, "[]", e.ok("POST", "/consume/g/i", `{"topic":"t","timeout":0}`))
		})
	}
}

func TestAuthOffAndSeveralCredentials(t *testing.T) {
	t.Parallel()
	open := newEnv(t, envConfig{noAuth: true, broker: []memory.Option{memory.WithTopic("t", 1)}})
	open.ok("GET", "/topics", "", "Authorization", "-")
	open.ok("GET", "/topics", "", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("any:thing")))

	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		server: []restserver.Option{restserver.WithCredentials("second", "pw2")},
	})
	e.ok("GET", "/topics", "")
	e.ok("GET", "/topics", "", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("second:pw2")))
	requireErrorBody(t, e.req("GET", "/topics", "", "Authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte("second:"+testPass))), http.StatusUnauthorized)
	e.ok("POST", "/webhook?topic=t&user=second&pass=pw2", "x", "Authorization", "-")
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	backend := restserver.NewMemoryBackend(b)
	tests := []struct {
		name string
		opt  restserver.Option
	}{
		{"empty username", restserver.WithCredentials("", "p")},
		{"empty password", restserver.WithCredentials("u", "")},
		{"colon in username", restserver.WithCredentials("a:b", "p")},
		{"zero message limit", restserver.WithMaxMessageBytes(0)},
		{"negative body limit", restserver.WithMaxBodyBytes(-1)},
		{"zero max timeout", restserver.WithMaxTimeout(0)},
		{"zero expiry", restserver.WithInstanceExpiry(0)},
		{"zero fetch records", restserver.WithFetchMaxRecords(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := restserver.New(backend, tt.opt)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), "restserver: invalid option")
		})
	}
	_, err = restserver.New(nil)
	require.Error(t, err)
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer = testutil.SyncBuffer

func TestCredentialsNeverLogged(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		server: []restserver.Option{restserver.WithLogger(logger)},
		wrap: func(b restserver.Backend) restserver.Backend {
			return faultyBackend{b, errors.New("fault")} // an Error-level log line too
		},
	})
	e.ok("POST", "/consume/g/i", `{"topic":"t","timeout":0}`)
	e.req("POST", "/webhook?topic=t&user="+testUser+"&pass="+testPass, "x", "Authorization", "-")
	e.req("GET", "/topics", "", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass+"x")))
	e.req("POST", "/produce/t", `{"value":"x"}`)
	e.ok("POST", "/delete-consumer/g/i", "")
	out := logs.String()
	assert.Contains(t, out, "kafka-rest: request", "requests are logged at debug")
	assert.Contains(t, out, "backend fault")
	assert.Contains(t, out, "/webhook")
	for _, secret := range []string{testPass, testUser, base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPass))} {
		assert.NotContains(t, out, secret)
	}
}

func TestServeAndShutdown(t *testing.T) {
	t.Parallel()
	b, err := memory.New(memory.WithTopic("t", 1))
	require.NoError(t, err)
	defer b.Close()
	waits := &waitsBegun{Backend: restserver.NewMemoryBackend(b), began: make(chan string, 8)}
	srv, err := restserver.New(waits, restserver.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e := &env{t: t, broker: b, srv: srv, url: "http://" + ln.Addr().String(), client: &http.Client{}}
	defer e.client.CloseIdleConnections()

	assert.Equal(t, `{"t":1}`, e.ok("GET", "/topics", ""))
	assert.Equal(t, "[]", e.ok("POST", "/consume/g/i", `{"topic":"t","timeout":0}`))

	// Long polls in flight (consume, fetch) end at once with [] on
	// Shutdown: the contexts of Serve's requests derive from the server's.
	// Shutdown waits until both wait in the backend: a request that has
	// arrived (Stats().Requests counts it) but not yet begun its wait is
	// not a long poll in flight, and is answered 503 (shutting down).
	waits.armed.Store(true)
	polled := make(chan reply, 2)
	go func() { polled <- e.req("POST", "/consume/g/i", `{"topic":"t","timeout":30000}`) }()
	go func() { polled <- e.req("POST", "/fetch", `{"topic":"t","partition":0,"offset":0,"timeout":30000}`) }()
	waiting := map[string]bool{}
	for len(waiting) < 2 {
		select {
		case w := <-waits.began:
			waiting[w] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("the long polls did not begin their waits (begun: %v)", waiting)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, srv.Shutdown(ctx))
	assert.Less(t, time.Since(start), 5*time.Second)
	for range 2 {
		select {
		case r := <-polled:
			assert.Equal(t, http.StatusOK, r.status)
			assert.Equal(t, "[]", r.body)
		case <-time.After(10 * time.Second):
			t.Fatal("long poll did not end on Shutdown")
		}
	}
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	assert.Equal(t, 0, srv.Stats().Instances)
	require.NoError(t, srv.Shutdown(ctx), "idempotent")
	require.NoError(t, srv.Close(), "idempotent")

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.Error(t, srv.Serve(ln2), "no Serve after Shutdown")
}

// waitsBegun is a Backend that reports, once armed, each wait it begins:
// "consume" when a member's Poll starts, "fetch" when WaitAny does. The
// server sees it as a backend whose reads may wait (as the Kafka backend),
// not as the embedded broker itself.
type waitsBegun struct {
	restserver.Backend
	armed atomic.Bool
	began chan string
}

func (w *waitsBegun) begin(what string) {
	if w.armed.Load() {
		select {
		case w.began <- what:
		default: // a poll loop's later rounds: already reported
		}
	}
}

func (w *waitsBegun) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := w.Backend.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	return pollBegun{c.(restserver.Member), w}, nil
}

func (w *waitsBegun) WaitAny(ctx context.Context, from []transport.Offset) error {
	w.begin("fetch")
	return w.Backend.WaitAny(ctx, from)
}

type pollBegun struct {
	restserver.Member
	w *waitsBegun
}

func (p pollBegun) Poll(ctx context.Context) ([]transport.Message, error) {
	p.w.begin("consume")
	return p.Member.Poll(ctx)
}

func TestClosedServerAnswers503(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	require.NoError(t, e.srv.Close())
	msg := requireErrorBody(t, e.req("GET", "/topics", ""), http.StatusServiceUnavailable)
	assert.Contains(t, msg, "shutting down")
}
