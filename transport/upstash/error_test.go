package upstash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

func TestErrorSentinels(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want error // nil: no sentinel
	}{
		{"ProduceUnknownTopic", Error{Status: 404, Path: "/produce", Message: `memory: produce to "x": transport: unknown topic`}, transport.ErrUnknownTopic},
		{"FetchUnknownTopic", Error{Status: 404, Path: "/fetch", Message: "whatever"}, transport.ErrUnknownTopic},
		{"OffsetsUnknownTopic", Error{Status: 404, Path: "/offsets/latest", Message: "nope"}, transport.ErrUnknownTopic},
		{"ConsumeUnknownTopic", Error{Status: 404, Path: "/consume/g/i", Message: `memory: subscribe "x": transport: unknown topic`}, transport.ErrUnknownTopic},
		{"ConsumeUnknownInstance", Error{Status: 404, Path: "/consume/g/i", Message: `consumer instance "i" of group "g" was deleted during the consume`}, nil},
		{"ConsumeFenced", Error{Status: 404, Path: "/consume/g/i", Message: "consumer instance was replaced by a newer member with the same instance id: x"}, transport.ErrFenced},
		{"UnknownRoute", Error{Status: 404, Path: "/nope", Message: "unknown route GET /nope"}, transport.ErrInvalid},
		{"DeleteUnknown", Error{Status: 404, Path: "/delete-consumer/g/i", Message: "consumer instance does not exist"}, nil},
		{"CommitNotAssigned", Error{Status: 400, Path: "/commit/g/i", Message: "memory: commit ...: transport: partition not assigned to this member"}, transport.ErrNotAssigned},
		{"CommitUnknownInstance", Error{Status: 404, Path: "/commit/g/i", Message: "consumer instance does not exist"}, transport.ErrNotAssigned},
		{"CommitConflict", Error{Status: 409, Path: "/commit/g/i"}, transport.ErrNotAssigned},
		{"CommitFenced", Error{Status: 404, Path: "/commit/g/i", Message: `consumer instance "i" of group "g" was replaced by a newer incarnation with the same instance id`}, transport.ErrFenced},
		{"DeleteFenced", Error{Status: 404, Path: "/delete-consumer/g/i", Message: "was replaced by a newer incarnation"}, transport.ErrFenced},
		{"TooLarge", Error{Status: 413, Path: "/produce", Message: "message is 2000000 bytes"}, transport.ErrMessageTooLarge},
		{"BadRequest", Error{Status: 400, Path: "/produce", Message: "value is required"}, transport.ErrInvalid},
		{"Unauthorized", Error{Status: 401, Path: "/produce", Message: "invalid credentials"}, transport.ErrInvalid}, // via ErrUnauthenticated: permanent (issue 15)
		{"Forbidden", Error{Status: 403, Path: "/produce", Message: "topic not allowed"}, transport.ErrInvalid},      // via ErrPermissionDenied
		{"ServerError", Error{Status: 500, Path: "/produce"}, nil},
	}
	sentinels := []error{transport.ErrUnknownTopic, transport.ErrMessageTooLarge, transport.ErrInvalid,
		transport.ErrNotAssigned, transport.ErrFenced, transport.ErrClosed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", &tt.err)
			for _, s := range sentinels {
				assert.Equal(t, s == tt.want, errors.Is(err, s), "errors.Is(%v, %v)", err, s)
			}
			var he *Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tt.err.Status, he.Status)
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Status: 404, Message: `topic "x" does not exist`, Method: "POST", Path: "/produce"}
	assert.Equal(t, `upstash: POST /produce: 404 Not Found: topic "x" does not exist`, e.Error())
	e = &Error{Status: 503, Message: "Service Unavailable"}
	assert.Equal(t, "upstash: 503 Service Unavailable", e.Error())
}

func TestTemporary(t *testing.T) {
	for status, want := range map[int]bool{400: false, 401: false, 404: false, 413: false, 429: true,
		500: true, 501: false, 502: true, 503: true, 504: true, 505: false} {
		assert.Equal(t, want, (&Error{Status: status}).Temporary(), "status %d", status)
	}
}

func TestParseRetryAfter(t *testing.T) {
	assert.Equal(t, time.Duration(0), parseRetryAfter(""))
	assert.Equal(t, 2*time.Second, parseRetryAfter("2"))
	assert.Equal(t, maxRetryAfter, parseRetryAfter("3600"))
	assert.Equal(t, time.Duration(0), parseRetryAfter("soon"))
	d := parseRetryAfter(time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat))
	assert.InDelta(t, float64(10*time.Second), float64(d), float64(2*time.Second))
}

// scripted is an HTTP server that answers each request with the next
// response of its script (the last one repeats) and counts requests.
type scripted struct {
	*httptest.Server
	mu       sync.Mutex
	script   []response
	requests atomic.Int64
	bodies   []string
	headers  []http.Header
	paths    []string // escaped
}

type response struct {
	status int
	body   string
	header map[string]string
}

func newScripted(t testing.TB, script ...response) *scripted {
	s := &scripted{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.headers = append(s.headers, r.Header.Clone())
		s.paths = append(s.paths, r.Method+" "+r.URL.EscapedPath())
		resp := s.script[min(int(n)-1, len(s.script)-1)]
		s.mu.Unlock()
		for k, v := range resp.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.status)
		_, _ = io.WriteString(w, resp.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) body(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[i]
}

func (s *scripted) path(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paths[i]
}

func (s *scripted) header(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[i]
}

// fastBackoff keeps retry tests quick.
var fastBackoff = WithBackoff(Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 2 * time.Second})

func newTestTransport(t testing.TB, url string, opts ...Option) *Transport {
	t.Helper()
	tr, err := New(append([]Option{WithURL(url), fastBackoff}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tr.Close()) })
	return tr
}

const okProduce = `[{"topic":"t","partition":0,"offset":7,"timestamp":1637743323016}]`

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		script   []response
		wantReqs int64
		wantErr  error // nil: success
		status   int   // of the *Error, when wantErr is set
	}{
		{"503Then200", []response{{503, `{"error":"busy","status":503}`, nil}, {200, okProduce, nil}}, 2, nil, 0},
		{"502And504Then200", []response{{502, `<html>bad gateway</html>`, nil}, {504, ``, nil}, {200, okProduce, nil}}, 3, nil, 0},
		{"429Then200", []response{{429, `{"error":"slow down","status":429}`, map[string]string{"Retry-After": "0"}}, {200, okProduce, nil}}, 2, nil, 0},
		{"400NotRetried", []response{{400, `{"error":"value is required","status":400}`, nil}, {200, okProduce, nil}}, 1, transport.ErrInvalid, 400},
		{"401NotRetried", []response{{401, `{"error":"invalid credentials","status":401}`, nil}, {200, okProduce, nil}}, 1, &Error{}, 401},
		{"404NotRetried", []response{{404, `{"error":"unknown topic","status":404}`, nil}, {200, okProduce, nil}}, 1, transport.ErrUnknownTopic, 404},
		{"501NotRetried", []response{{501, `{"error":"no","status":501}`, nil}, {200, okProduce, nil}}, 1, &Error{}, 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScripted(t, tt.script...)
			tr := newTestTransport(t, srv.URL)
			out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
			assert.Equal(t, tt.wantReqs, srv.requests.Load(), "requests made")
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Len(t, out, 1)
				assert.Equal(t, int64(7), out[0].Offset)
				assert.True(t, out[0].Time.Equal(time.UnixMilli(1637743323016)))
				return
			}
			var he *Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tt.status, he.Status)
			assert.Equal(t, "POST", he.Method)
			assert.Equal(t, "/produce", he.Path)
			if _, isErr := tt.wantErr.(*Error); !isErr {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Empty(t, out)
		})
	}
}

func TestRetryGivesUp(t *testing.T) {
	t.Run("MaxRetries", func(t *testing.T) {
		srv := newScripted(t, response{503, `{"error":"down","status":503}`, nil})
		tr := newTestTransport(t, srv.URL, WithBackoff(Backoff{Initial: time.Millisecond, MaxRetries: 3}))
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
		var he *Error
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 503, he.Status)
		assert.Equal(t, "down", he.Message)
		assert.Equal(t, int64(4), srv.requests.Load(), "one attempt and three retries")
	})
	t.Run("WithoutRetry", func(t *testing.T) {
		srv := newScripted(t, response{503, `{"error":"down","status":503}`, nil})
		tr := newTestTransport(t, srv.URL, WithoutRetry())
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
		require.Error(t, err)
		assert.Equal(t, int64(1), srv.requests.Load())
	})
	t.Run("ContextEnds", func(t *testing.T) {
		srv := newScripted(t, response{503, `{"error":"down","status":503}`, nil})
		tr := newTestTransport(t, srv.URL, WithBackoff(Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
		require.Error(t, err)
		assert.Less(t, time.Since(start), 2*time.Second, "retries stop with the caller's context")
		assert.Greater(t, srv.requests.Load(), int64(1))
	})
	t.Run("ConnectionRefusedRetried", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		var retries atomic.Int64
		tr := newTestTransport(t, "http://"+addr, WithBackoff(Backoff{Initial: time.Millisecond, MaxRetries: 2}),
			WithLogger(newCountingLogger(&retries)))
		_, err = tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
		var ce *connError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, int64(2), retries.Load(), "a refused connection is retried")
	})
}

func TestHungConnectionRetried(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select { // hang the first attempt
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, okProduce)
	}))
	defer srv.Close()
	defer close(release)
	tr := newTestTransport(t, srv.URL, WithRequestTimeout(100*time.Millisecond))
	out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.NoError(t, err)
	assert.Equal(t, int64(7), out[0].Offset)
	assert.Equal(t, int64(2), n.Load())
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{`{"error":"invalid credentials","status":401}`, "invalid credentials"},
		{`{"result":"Failure","status":401}`, "Failure"},
		{`plain text`, "plain text"},
		{`<html>nope</html>`, "Unauthorized"},
		{``, "Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			srv := newScripted(t, response{401, tt.body, nil})
			tr := newTestTransport(t, srv.URL, WithCredentials("alice", "s3cret"))
			_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
			var he *Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, 401, he.Status)
			assert.Equal(t, tt.want, he.Message)
			assert.NotContains(t, err.Error(), "s3cret")
			user, pass, ok := (&http.Request{Header: srv.header(0)}).BasicAuth()
			require.True(t, ok, "Basic auth sent")
			assert.Equal(t, "alice", user)
			assert.Equal(t, "s3cret", pass)
		})
	}
}

// A consume answered "replaced by a newer member" fences the consumer for
// good: no later Poll re-creates the instance, and Close deletes nothing.
func TestServerFence(t *testing.T) {
	srv := newScripted(t,
		response{200, `[]`, nil},
		response{404, `{"error":"consumer instance was replaced by a newer member with the same instance id: x","status":404}`, nil})
	tr := newTestTransport(t, srv.URL)
	c, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"t"}})
	require.NoError(t, err)
	_, err = c.Poll(t.Context())
	require.ErrorIs(t, err, transport.ErrFenced)
	_, err = c.Poll(t.Context())
	require.ErrorIs(t, err, transport.ErrFenced)
	require.ErrorIs(t, c.Commit(t.Context(), transport.Message{Topic: "t"}), transport.ErrFenced)
	require.NoError(t, c.Close())
	assert.Equal(t, int64(2), srv.requests.Load(), "no request after the fence")
	_, err = c.Poll(t.Context())
	require.ErrorIs(t, err, transport.ErrClosed)
}
