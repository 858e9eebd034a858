package upstash

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Attacks on the instance keep-alive (keepalive.go, commit ad6574b).

// rawCommitted sends GET /committed/{group}/{instance} with no body and
// the given incarnation token (none when ""), as the keep-alive does, and
// returns the status and body.
func rawCommitted(t *testing.T, base, group, instance, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+restPath("committed", group, instance), nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set(incarnationHeader, token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// A consumer replaced by a newer incarnation (another process with its
// instance id) while its owner is busy learns it from its keep-alive, a
// 404 that says transport.ErrFenced. The server remembers a replaced token
// only for its instance expiry after the successor's last request: once
// the successor is gone and that has passed, a consume of the replaced
// incarnation is served as a new instance. The keep-alive knew the
// consumer was fenced, so its next Poll must say so (as a Poll that had
// met the fence itself does), not re-create the instance for a process
// that must stop and go on as a member without a keep-alive.
func TestBreak21KeepAliveFenceIsRemembered(t *testing.T) {
	const (
		expiry = 300 * time.Millisecond
		every  = 10 * time.Millisecond
	)
	s := startServer(t, serverConfig{server: []restserver.Option{restserver.WithInstanceExpiry(expiry)}})
	spy, hc := newKeepAliveSpy(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sub := transport.Subscription{Group: "g", Instance: "w1", Topics: []string{"jobs"}}
	old, err := newTestTransport(t, s.URL, WithInstanceKeepAlive(every), WithHTTPClient(hc)).Subscribe(ctx, sub)
	require.NoError(t, err)
	defer old.Close()
	require.Eventually(t, func() bool { return spy.sent.Load() >= 1 }, 5*time.Second, time.Millisecond)

	// Another process takes the instance over, and its keep-alive tells
	// the busy old one.
	successor, err := newTestTransport(t, s.URL, WithInstanceKeepAlive(0)).Subscribe(ctx, sub)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return spy.fenced.Load() >= 1 }, 5*time.Second, time.Millisecond,
		"the keep-alive was not told of the replacement")
	// The successor leaves; the server forgets the replaced token an
	// expiry later (a keep-alive of it is then a plain unknown instance).
	require.NoError(t, successor.Close())
	token := old.(*consumer).deleteHdr.Get(incarnationHeader)
	require.Eventually(t, func() bool {
		code, _ := rawCommitted(t, s.URL, "g", "w1", token)
		return code == http.StatusBadRequest
	}, 10*time.Second, 10*time.Millisecond, "the server did not forget the replaced incarnation")

	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	_, err = old.Poll(pctx)
	require.ErrorIs(t, err, transport.ErrFenced, "a consumer its keep-alive found fenced polled on")
	assert.Zero(t, s.REST.Stats().Instances, "the fenced consumer made an instance again")
}

// GET /committed with no body, the keep-alive's request, never makes an
// instance: for an unknown one it answers 400 (with or without an
// incarnation), and the server has none afterwards. At the instance cap
// it is answered the same, and the cap still holds; the Subscribe the cap
// refuses leaves no keep-alive behind.
func TestBreak21CommittedNeverCreates(t *testing.T) {
	s := startServer(t, serverConfig{server: []restserver.Option{restserver.WithMaxInstances(1)}})
	for _, token := range []string{"", "tok-1"} {
		code, body := rawCommitted(t, s.URL, "g", "nobody", token)
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.True(t, strings.Contains(body, "does not exist"), body)
	}
	assert.Zero(t, s.REST.Stats().Instances)

	tr := newTestTransport(t, s.URL, WithoutRetry())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "first", Topics: []string{"jobs"}})
	require.NoError(t, err)
	defer c.Close()
	code, body := rawCommitted(t, s.URL, "g", "second", "tok-2")
	assert.Equal(t, http.StatusBadRequest, code, body)
	_, err = tr.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "second", Topics: []string{"jobs"}})
	var he *Error
	require.ErrorAs(t, err, &he)
	assert.Equal(t, http.StatusServiceUnavailable, he.Status, "the instance cap")
	assert.Equal(t, 1, s.REST.Stats().Instances)
	assert.Equal(t, 1, keepAlives(), "a failed Subscribe left a keep-alive running")
}

// Close and a second Subscribe of the same instance on the same Transport
// race keep-alives sent every millisecond: a keep-alive in flight when the
// delete lands never leaves an instance behind, and no keep-alive
// goroutine outlives its consumer.
func TestBreak21KeepAliveRacesCloseAndResubscribe(t *testing.T) {
	s := startServer(t, serverConfig{})
	spy, hc := newKeepAliveSpy(t)
	tr := newTestTransport(t, s.URL, WithInstanceKeepAlive(time.Millisecond), WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sub := transport.Subscription{Group: "g", Instance: "w1", Topics: []string{"jobs"}}
	for i := range 30 {
		c, err := tr.Subscribe(ctx, sub)
		require.NoError(t, err)
		sent := spy.sent.Load()
		require.Eventually(t, func() bool { return spy.sent.Load() > sent }, 5*time.Second, 100*time.Microsecond)
		if i%2 == 0 {
			require.NoError(t, c.Close())
			require.Zero(t, keepAlives(), "keep-alive after Close")
			continue
		}
		// Replaced by the next Subscribe on this Transport.
		defer c.Close()
	}
	require.Eventually(t, func() bool { return keepAlives() <= 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, tr.Close())
	assert.Zero(t, keepAlives())
	require.Never(t, func() bool { return s.REST.Stats().Instances != 0 }, 200*time.Millisecond, 5*time.Millisecond,
		"an instance was left behind")
}
