package restserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Fuzz targets for the REST server's request parsing (issue 5, part 7).
// Every input goes through the real http.Handler over a real embedded
// broker, so what is fuzzed is everything a request's bytes reach: path
// splitting and routing, authentication, JSON bodies, query timeouts,
// consumer configuration headers, validation and the backend's answers to
// whatever passes validation. The properties checked on every answer:
// never a panic, never a 5xx (bad input is the client's fault), always a
// JSON body, and an error is always {"error": "...", "status": N} with N the
// HTTP status. The seed corpora are under testdata/fuzz/<Target>/.

// fuzzEnv is a server over an embedded broker with topics t (2 partitions)
// and u (1), no auto-create, credentials testUser/testPass, and small
// limits so that no input can make one execution slow: a long poll or a
// fetch with nothing to read waits at most fuzzMaxTimeout.
type fuzzEnv struct {
	srv    *restserver.Server
	broker *memory.Broker
	n      atomic.Int64 // makes instance names unique per execution
}

const fuzzMaxTimeout = 5 * time.Millisecond

func newFuzzEnv(f *testing.F, opts ...restserver.Option) *fuzzEnv {
	f.Helper()
	b, err := memory.New(memory.WithTopic("t", 2), memory.WithTopic("u", 1), memory.WithAutoCreate(false),
		memory.WithRetention(64, 0), memory.WithMaxPollRecords(8))
	require.NoError(f, err)
	srv, err := restserver.New(restserver.NewMemoryBackend(b), append([]restserver.Option{
		restserver.WithLogger(slog.New(slog.DiscardHandler)),
		restserver.WithCredentials(testUser, testPass),
		restserver.WithMaxTimeout(fuzzMaxTimeout),
		restserver.WithMaxBodyBytes(64 << 10),
		restserver.WithMaxMessageBytes(4 << 10),
		restserver.WithFetchMaxRecords(8),
	}, opts...)...)
	require.NoError(f, err)
	f.Cleanup(func() {
		require.NoError(f, srv.Close())
		require.NoError(f, b.Close())
	})
	return &fuzzEnv{srv: srv, broker: b}
}

// feed appends one record to every partition, so a consume or fetch that
// passes validation finds records and answers at once.
func (e *fuzzEnv) feed(t testing.TB) {
	t.Helper()
	_, err := e.broker.Produce(context.Background(),
		transport.Message{Topic: "t", Partition: 0, ManualPartition: true, Value: []byte("a")},
		transport.Message{Topic: "t", Partition: 1, ManualPartition: true, Value: []byte("b")},
		transport.Message{Topic: "u", Partition: 0, ManualPartition: true, Value: []byte("c")})
	require.NoError(t, err)
}

// do serves r with the test credentials (unless r has an Authorization
// header already) and checks the answer's properties.
func (e *fuzzEnv) do(t testing.TB, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	if r.Header.Get("Authorization") == "" {
		r.SetBasicAuth(testUser, testPass)
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	checkAnswer(t, r, w)
	return w
}

// checkAnswer checks the properties every answer to any input must have.
func checkAnswer(t testing.TB, r *http.Request, w *httptest.ResponseRecorder) {
	t.Helper()
	what := fmt.Sprintf("%s %q", r.Method, r.URL.RequestURI())
	body := w.Body.Bytes()
	// 504 is the server's own time limit (5 ms here, so that long polls
	// keep the fuzzer fast) running out under load: an answer, not a fault.
	if w.Code >= 500 && w.Code != http.StatusGatewayTimeout {
		t.Fatalf("%s: status %d for client input: %s", what, w.Code, body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: status %d, Content-Type %q: %s", what, w.Code, ct, body)
	}
	if !json.Valid(body) {
		t.Fatalf("%s: status %d, body is not JSON: %q", what, w.Code, body)
	}
	if w.Code < 400 {
		return
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil || len(e) != 2 {
		t.Fatalf("%s: status %d, error body is not {error, status}: %s", what, w.Code, body)
	}
	if msg, ok := e["error"].(string); !ok || msg == "" {
		t.Fatalf("%s: status %d, error body without a message: %s", what, w.Code, body)
	}
	if st, ok := e["status"].(float64); !ok || int(st) != w.Code {
		t.Fatalf("%s: status %d, error body says status %v", what, w.Code, e["status"])
	}
}

// withTimeout appends ?timeout=q to path unless q is empty.
func withTimeout(path, q string) string {
	if q == "" {
		return path
	}
	return path + "?timeout=" + url.QueryEscape(q)
}

// Seeds shared by the targets whose bodies are topic partitions.
var topicPartitionSeeds = []string{
	``, `[]`, `{}`, `null`, `"t"`, `7`, `[null]`, `[{}]`, `{"topic":"t"}`,
	`{"topic":"t","partition":0}`, `{"topic":"t","partition":1,"offset":0}`,
	`[{"topic":"t","partition":0,"offset":1},{"topic":"u","partition":0,"offset":2}]`,
	`{"topic":"t","partition":-1,"offset":0}`, `{"topic":"t","partition":0,"offset":-1}`,
	`{"topic":"t","partition":2,"offset":0}`, `{"topic":"t","partition":2147483647,"offset":9223372036854775807}`,
	`{"topic":"t","partition":2147483648}`, `{"topic":"t","partition":1.5}`, `{"topic":"t","partition":"0"}`,
	`{"topic":"nope","partition":0,"offset":0}`, `{"topic":"","partition":0,"offset":0}`,
	`{"topic":"t","partition":0,"offset":1e30}`, `{"topic":"t","partition":0,"offset":0,"extra":[1,{"a":null}]}`,
	`{"topic":"t","partition":0,"offset":0`, `[{"topic":"t","partition":0,"offset":0},`, `{"topic":"t\u0000"}`,
	`  {"topic":"u","partition":0,"offset":0}  `, `{"topic":"t","partition":0,"offset":0} trailing`,
}

// FuzzConsumeRequest fuzzes POST /consume/{group}/{instance}: the body, the
// ?timeout= query and the consumer configuration headers, read when the
// instance is made (each execution makes a fresh instance and deletes it).
func FuzzConsumeRequest(f *testing.F) {
	e := newFuzzEnv(f)
	bodies := []string{
		``, `{}`, `[]`, `null`, `"t"`, `{"topic":"t"}`, `{"topic":"u","timeout":0}`, `{"topics":["t","u"],"timeout":1000}`,
		`{"topics":["t","t",""]}`, `{"topic":"t","topics":["u"]}`, `{"topic":"nope"}`, `{"topics":[]}`, `{"topics":null}`,
		`{"topic":"t","timeout":-1}`, `{"topic":"t","timeout":1e400}`, `{"topic":"t","timeout":"5"}`, `{"topic":"t","timeout":0.5}`,
		`{"topic":7}`, `{"topics":"t"}`, `{"topic":"t"`, `{"topic":"t"}{"topic":"u"}`, `{"topic":"\ud800"}`,
	}
	for i, b := range bodies {
		f.Add([]byte(b), "", "", "", "earliest", "")
		if i < 6 {
			f.Add([]byte(b), "0", "false", "", "latest", "1000")
		}
	}
	f.Add([]byte(`{"topic":"t"}`), "soon", "true", "5000", "earliest", "30000")
	f.Add([]byte(`{"topic":"t"}`), "NaN", "maybe", "-5", "sideways", "0")
	f.Add([]byte(`{"topic":"t"}`), "-1", "TRUE", "1e3", "none", "-1")
	f.Add([]byte(`{"topics":["t","u"]}`), "Inf", " false ", "9223372036854775807", "NONE", "99999999999999999999")
	f.Fuzz(func(t *testing.T, body []byte, timeout, autoCommit, interval, reset, session string) {
		e.feed(t)
		inst := fmt.Sprintf("i%d", e.n.Add(1))
		r := httptest.NewRequest("POST", withTimeout("/consume/g/"+inst, timeout), bytes.NewReader(body))
		for k, v := range map[string]string{
			"Kafka-Enable-Auto-Commit": autoCommit, "Kafka-Auto-Commit-Interval": interval,
			"Kafka-Auto-Offset-Reset": reset, "Kafka-Session-Timeout-Ms": session,
		} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		e.do(t, r)
		w := e.do(t, httptest.NewRequest("POST", "/delete-consumer/g/"+inst, nil))
		if w.Code != http.StatusOK && w.Code != http.StatusNotFound {
			t.Fatalf("delete-consumer: status %d: %s", w.Code, w.Body)
		}
	})
}

// FuzzCommitRequest fuzzes the body of POST /commit/{group}/{instance} on
// an instance that has joined with topics t and u.
func FuzzCommitRequest(f *testing.F) {
	e := newFuzzEnv(f, restserver.WithMaxTimeout(time.Second))
	e.feed(f)
	r := httptest.NewRequest("POST", "/consume/g/i", strings.NewReader(`{"topics":["t","u"]}`))
	r.Header.Set("Kafka-Auto-Offset-Reset", "earliest")
	w := e.do(f, r)
	require.Equal(f, http.StatusOK, w.Code, w.Body.String())
	for _, s := range topicPartitionSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e.do(t, httptest.NewRequest("POST", "/commit/g/i", bytes.NewReader(body)))
	})
}

// FuzzCommittedRequest fuzzes POST /committed/{group}/{instance}: the body
// (an empty one lists the instance's own partitions), the instance (i has
// joined with topic t; others do not exist) and ?timeout=.
func FuzzCommittedRequest(f *testing.F) {
	e := newFuzzEnv(f)
	r := httptest.NewRequest("POST", "/consume/g/i", strings.NewReader(`{"topic":"t","timeout":0}`))
	require.Equal(f, http.StatusOK, e.do(f, r).Code)
	for _, s := range topicPartitionSeeds {
		f.Add([]byte(s), "i", "")
	}
	f.Add([]byte(``), "ghost", "")
	f.Add([]byte(`{"topic":"t","partition":0}`), "ghost", "10")
	f.Add([]byte(``), "i", "-1")
	f.Add([]byte(``), "i", "1e309")
	f.Add([]byte(`[{"topic":"t","partition":0},{"topic":"t","partition":1}]`), "i", "abc")
	f.Fuzz(func(t *testing.T, body []byte, inst, timeout string) {
		if inst == "" {
			inst = "i"
		}
		e.do(t, httptest.NewRequest("POST", withTimeout("/committed/g/"+url.PathEscape(inst), timeout), bytes.NewReader(body)))
	})
}

// FuzzFetchRequest fuzzes the body and ?timeout= of POST /fetch.
func FuzzFetchRequest(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range topicPartitionSeeds {
		f.Add([]byte(s), "")
	}
	for _, s := range []string{
		`{"topic":"t","partition":0,"offset":0,"timeout":0}`,
		`{"topicPartitionOffsets":[{"topic":"t","partition":1,"offset":0},{"topic":"u","partition":0,"offset":3}]}`,
		`{"topic":"t","topicPartitionOffsets":[{"topic":"u"}]}`, `{"partition":0,"offset":0}`, `{"offset":5}`,
		`{"topicPartitionOffsets":[]}`, `{"topicPartitionOffsets":{}}`, `{"topicPartitionOffsets":[null]}`,
		`{"topic":"t","timeout":-5}`, `{"topic":"t","timeout":"1"}`, `{"topic":"t","partition":0,"offset":99999999}`,
		// The carried produce (carry.go), and the commit a fetch refuses.
		`{"topic":"t","partition":0,"offset":0,"timeout":0,"produce":[{"topic":"u","value":"x"}]}`,
		`{"topic":"t","produce":{"topic":"t","value":"x","headers":[{"key":"k","value":"v"}]}}`,
		`{"topic":"t","produce":[]}`, `{"topic":"t","produce":null}`, `{"topic":"t","produce":[{"topic":"nope","value":"x"}]}`,
		`{"topic":"t","produce":"x"}`, `{"topic":"t","produce":[{"value":"x"}]}`, `{"topic":"t","commit":[]}`,
		`{"topic":"nope","produce":[{"topic":"t","value":"x"}]}`, `{"produce":[{"topic":"t","value":"x"}]}`,
	} {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "0")
	}
	f.Add([]byte(`{"topic":"t"}`), "-3")
	f.Add([]byte(`{"topic":"t"}`), "0x10")
	f.Fuzz(func(t *testing.T, body []byte, timeout string) {
		e.feed(t)
		e.do(t, httptest.NewRequest("POST", withTimeout("/fetch", timeout), bytes.NewReader(body)))
	})
}

// FuzzOffsetsRequest fuzzes POST /offsets/{earliest|latest|timestamp}: the
// path segment, the body and ?timeout=.
func FuzzOffsetsRequest(f *testing.F) {
	e := newFuzzEnv(f)
	for i, s := range topicPartitionSeeds {
		which := []string{"earliest", "latest", "1637745824883", "1637745824"}[i%4]
		f.Add(which, []byte(s), "")
	}
	for _, which := range []string{"earliest", "latest", "0", "-1", "99999999999", "9223372036854775807",
		"9223372036854775808", "1e12", "EARLIEST", "latest ", "", "%zz", "a/b", ".."} {
		f.Add(which, []byte(`{"topic":"t","partition":0}`), "")
	}
	f.Add("latest", []byte(`[{"topic":"t","partition":0},{"topic":"t","partition":1},{"topic":"u","partition":0}]`), "100")
	f.Add("earliest", []byte(`{"topic":"t","partition":0}`), "-1")
	f.Fuzz(func(t *testing.T, which string, body []byte, timeout string) {
		if which == "" {
			which = "latest"
		}
		e.do(t, httptest.NewRequest("POST", withTimeout("/offsets/"+url.PathEscape(which), timeout), bytes.NewReader(body)))
	})
}

// FuzzRequest fuzzes whole requests as a client sends them: method, target
// (path and query, parsed by net/http's own request parser as a server
// would), the Authorization header and a body. Besides the properties of
// every answer, it checks authentication: a request without the right
// credentials is always answered 401 (or 429 once its address has failed
// too often).
func FuzzRequest(f *testing.F) {
	e := newFuzzEnv(f, restserver.WithInstanceExpiry(100*time.Millisecond))
	good := "Basic " + basic(testUser, testPass)
	seeds := []struct{ method, target, body string }{
		{"GET", "/topics", ""}, {"GET", "/consumers", ""}, {"GET", "/", ""}, {"GET", "//", ""}, {"GET", "/nope", ""},
		{"POST", "/produce", `{"topic":"t","value":"v"}`}, {"POST", "/produce/t", `[{"value":"v","key":"k"}]`},
		{"GET", "/produce/t/hello?key=k", ""}, {"GET", "/produce/t/%2F%25", ""}, {"GET", "/produce/t/a/b", ""},
		{"POST", "/produce/t/", `{"value":{"nested":[1,2]}}`}, {"POST", "/produce/nope", `{"value":"v"}`},
		{"POST", "/webhook?topic=t", "raw"}, {"POST", "/webhook?topic=t&user=" + testUser + "&pass=" + testPass, "raw"},
		{"POST", "/webhook", "raw"}, {"GET", "/consume/g/i/t?timeout=0", ""}, {"GET", "/consume/g/i/t?timeout=soon", ""},
		{"POST", "/consume/g/i", `{"topic":"t","timeout":0}`}, {"POST", "/consume//i", `{"topic":"t"}`},
		{"POST", "/consume/g%2Fx/i%20j", `{"topic":"t","timeout":0}`}, {"POST", "/consume/%zz/i", ""},
		{"POST", "/commit/g/i", ``}, {"POST", "/committed/g/i", `{"topic":"t","partition":0}`},
		{"POST", "/delete-consumer/g/i", ""}, {"DELETE", "/delete-consumer/g/i", ""}, {"GET", "/delete-consumer/g/i", ""},
		{"POST", "/fetch", `{"topic":"t","partition":0,"offset":0}`}, {"GET", "/fetch/", `{"topic":"t"}`},
		{"POST", "/offsets/latest", `{"topic":"t","partition":0}`}, {"GET", "/offsets/1637745824", `[]`},
		{"PUT", "/produce/t", `{"value":"v"}`}, {"OPTIONS", "*", ""}, {"CONNECT", "example.com:443", ""},
		{"GET", "http://example.com/topics", ""}, {"GET", "/schema-registry/subjects", ""}, {"GET", "/topics?x=%zz", ""},
	}
	for i, s := range seeds {
		f.Add(s.method, s.target, good, []byte(s.body))
		if i%5 == 0 {
			f.Add(s.method, s.target, "", []byte(s.body))
			f.Add(s.method, s.target, "Basic "+basic(testUser, "wrong"), []byte(s.body))
		}
	}
	f.Add("GET", "/topics", "Bearer "+testPass, []byte(nil))
	f.Add("GET", "/topics", "Basic !!!", []byte(nil))
	f.Add("GET", "/topics", "Basic "+basic(testUser+":"+testPass, ""), []byte(nil))
	f.Add("GET", "/topics", "basic "+basic(testUser, testPass), []byte(nil))
	f.Fuzz(func(t *testing.T, method, target, auth string, body []byte) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: fuzz\r\nAuthorization: %s\r\nKafka-Auto-Offset-Reset: earliest\r\nContent-Length: %d\r\n\r\n",
			method, target, auth, len(body))
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + string(body))))
		if err != nil {
			return // net/http's server answers 400 itself: the handler never sees it
		}
		e.feed(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r = r.WithContext(ctx)
		authorized := authorizedRequest(r)
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, r)
		checkAnswer(t, r, w)
		if !authorized && w.Code != http.StatusUnauthorized && w.Code != http.StatusTooManyRequests {
			t.Fatalf("%s %q with Authorization %q: status %d without the right credentials: %s",
				r.Method, r.RequestURI, r.Header.Get("Authorization"), w.Code, w.Body)
		}
	})
}

// authorizedRequest reports whether r carries the test credentials, in the
// Authorization header or (on /webhook without one) in ?user=&pass=.
func authorizedRequest(r *http.Request) bool {
	if u, p, ok := r.BasicAuth(); ok {
		return u == testUser && p == testPass
	}
	if r.Header.Get("Authorization") != "" {
		return false
	}
	q := r.URL.Query()
	return (q.Has("user") || q.Has("pass")) && q.Get("user") == testUser && q.Get("pass") == testPass
}

// basic is the HTTP Basic token of user:pass.
func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
