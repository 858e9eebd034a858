package upstash

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// closedPort22 returns the address of a loopback port nothing listens on.
func closedPort22(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// logged22 returns a logger writing text lines, debug level and up, to buf.
func logged22(buf *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// warnings22 returns the warning lines of a text log.
func warnings22(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") {
			out = append(out, l)
		}
	}
	return out
}

// An rpc client and server over the REST transport pointed at a port
// nothing listens on: each fails within its setup timeout with an error
// that matches transport.ErrUnavailable (and still the deadline), names the
// server's host once and the server's uuid'd dedup-reader instance at most
// once, with no stutter of package prefixes; and a warning naming the host
// was logged once, on the first retry, not on every retry.
func TestBreak22UnreachableServerIsErrUnavailableWithOneWarning(t *testing.T) {
	addr := closedPort22(t)
	newTr := func(buf *testutil.SyncBuffer) *Transport {
		return newTestTransport(t, "http://"+addr, WithLogger(logged22(buf)),
			WithBackoff(Backoff{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond}),
			WithSetupTimeout(400*time.Millisecond))
	}
	check := func(t *testing.T, err error, buf *testutil.SyncBuffer, took time.Duration) {
		t.Helper()
		require.Error(t, err)
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		assert.Less(t, took, 3*time.Second)
		assert.ErrorIs(t, err, transport.ErrUnavailable)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a deadline is still reported as one")
		msg := err.Error()
		assert.Equal(t, 1, strings.Count(msg, addr), "the host once: %s", msg)
		assert.Contains(t, msg, "connection refused")
		assert.Contains(t, msg, "WithSetupTimeout")
		assert.NotContains(t, msg, "upstash: upstash:")
		assert.NotRegexp(t, `upstash: \w+: upstash:`, msg)
		assert.NotContains(t, msg, "rpc: Serve: rpc:")

		log := buf.String()
		assert.GreaterOrEqual(t, strings.Count(log, "upstash: retrying request"), 2, "retried: %s", log)
		warns := warnings22(log)
		require.Len(t, warns, 1, "one warning for the outage, not one per retry: %s", log)
		assert.Contains(t, warns[0], addr)
		assert.Contains(t, warns[0], "connection refused")
		assert.Contains(t, warns[0], "retrying")
		assert.Contains(t, warns[0], "deadline")
	}

	t.Run("client", func(t *testing.T) {
		var buf testutil.SyncBuffer
		start := time.Now()
		cli, err := rpc.NewClient(newTr(&buf), rpc.WithName("cli22"), rpc.WithLogger(discard))
		if cli != nil {
			cli.Close()
		}
		check(t, err, &buf, time.Since(start))
		assert.Contains(t, err.Error(), `rpc: NewClient: reply reader on "cli22.replies": upstash: tail: GET /topics: `)
	})
	t.Run("server", func(t *testing.T) {
		var buf testutil.SyncBuffer
		srv, err := rpc.NewServer(newTr(&buf), rpc.WithName("svc22"), rpc.WithLogger(discard))
		require.NoError(t, err)
		rpc.Handle(srv, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
		start := time.Now()
		err = srv.Serve(t.Context())
		check(t, err, &buf, time.Since(start))
		msg := err.Error()
		assert.True(t, strings.HasPrefix(msg, `rpc: Serve: replay dedup topic "svc22.handled": upstash: subscribe: POST /consume/svc22.handled.reader.`), msg)
		assert.Equal(t, 1, strings.Count(msg, "svc22.handled.reader."), "the reader's group once: %s", msg)
		assert.Equal(t, 1, strings.Count(msg, "kafkarpc-"), "the reader's instance once: %s", msg)
	})
}

// A server answering 503 forever: a produce gives up at its deadline, or at
// the backoff's own limit without one, with an error matching
// transport.ErrUnavailable that still carries the last *Error; the outage
// is logged once, naming the host.
func TestBreak22Forever503IsErrUnavailable(t *testing.T) {
	s := newScripted(t, response{503, `{"error":"overloaded","status":503}`, nil})
	host := strings.TrimPrefix(s.URL, "http://")
	var buf testutil.SyncBuffer
	tr := newTestTransport(t, s.URL, WithLogger(logged22(&buf)),
		WithBackoff(Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxRetries: 3}))
	msg := transport.Message{Topic: "t", Value: []byte(`"v"`)}

	_, err := tr.Produce(t.Context(), msg)
	require.Error(t, err)
	t.Logf("retries spent: %v", err)
	assert.ErrorIs(t, err, transport.ErrUnavailable)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	var he *Error
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusServiceUnavailable, he.Status)
	assert.Contains(t, err.Error(), "overloaded")
	assert.Equal(t, 1, strings.Count(err.Error(), host), err.Error())

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	tr2 := newTestTransport(t, s.URL, WithLogger(discard),
		WithBackoff(Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}))
	_, err = tr2.Produce(ctx, msg)
	require.Error(t, err)
	t.Logf("deadline: %v", err)
	assert.ErrorIs(t, err, transport.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusServiceUnavailable, he.Status)

	warns := warnings22(buf.String())
	require.Len(t, warns, 1, buf.String())
	assert.Contains(t, warns[0], host)
	assert.Contains(t, warns[0], "503")
}

// Answers that say something of the request or the credentials are not an
// unavailable server, however the call ends, and are not logged as an
// outage.
func TestBreak22ClientErrorsAreNotErrUnavailable(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
	}{
		{401, `{"error":"invalid credentials","status":401}`},
		{403, `{"error":"not allowed","status":403}`},
		{404, `{"error":"topic not found","status":404}`},
		{400, `{"error":"bad request","status":400}`},
		{501, `{"error":"not implemented","status":501}`},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s := newScripted(t, response{tt.status, tt.body, nil})
			var buf testutil.SyncBuffer
			tr := newTestTransport(t, s.URL, WithLogger(logged22(&buf)))
			_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte(`"v"`)})
			require.Error(t, err)
			assert.NotErrorIs(t, err, transport.ErrUnavailable)
			_, err = tr.Tail(t.Context(), "t")
			require.Error(t, err)
			assert.NotErrorIs(t, err, transport.ErrUnavailable)
			assert.Empty(t, warnings22(buf.String()))
		})
	}
	// Nor is a canceled call, which gave up nothing: its caller left.
	s := newScripted(t, response{503, `{"error":"busy","status":503}`, nil})
	tr := newTestTransport(t, s.URL, WithLogger(discard), WithBackoff(Backoff{Initial: 50 * time.Millisecond}))
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := tr.Tail(ctx, "t")
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, transport.ErrUnavailable)
}

// One warning per outage: a server failing, then answering, then failing
// again logs two warnings and one note that it answers again, however many
// requests and retries each outage takes.
func TestBreak22OneWarningPerOutage(t *testing.T) {
	s := newScripted(t,
		response{503, `{"error":"busy","status":503}`, nil},
		response{502, ``, nil},
		response{200, okProduce, nil},
		response{200, okProduce, nil},
		response{503, `{"error":"busy","status":503}`, nil},
		response{503, `{"error":"busy","status":503}`, nil},
		response{200, okProduce, nil},
	)
	var buf testutil.SyncBuffer
	tr := newTestTransport(t, s.URL, WithLogger(logged22(&buf)))
	for range 3 {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte(`"v"`)})
		require.NoError(t, err)
	}
	log := buf.String()
	assert.Len(t, warnings22(log), 2, log)
	assert.Equal(t, 2, strings.Count(log, "answers again"), log)
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	assert.Contains(t, warnings22(log)[0], u.Host)
}
