package upstash

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
