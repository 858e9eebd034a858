package upstash

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The client never logs credentials or the Authorization header (issue 5,
// part 8): everything it logs at Debug and above, through retried 503s and
// reset connections, 401 answers, a server that went away and a Close whose
// cleanup fails, is captured and searched for them. The errors it returns
// are searched too.
func TestCredentialsNeverLogged(t *testing.T) {
	const user, pass = "svc-7f3a-user", "pw-9c1e-very-secret"
	var logs logBuffer
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// Right credentials, as an option and in the URL, against a server
	// that answers 503 to 30% of requests and drops 20% of connections.
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithPartitions(2)},
		server: []restserver.Option{restserver.WithCredentials(user, pass)},
		faults: &resttest.Faults{Seed: 11, Unavailable: 0.3, Reset: 0.2},
	})
	for i, opts := range [][]Option{
		{WithURL(s.URL), WithCredentials(user, pass)},
		{WithURL(strings.Replace(s.URL, "http://", "http://"+user+":"+pass+"@", 1))},
	} {
		tr, err := New(append(opts, fastBackoff, WithPollWindow(200*time.Millisecond), WithLogger(logs.logger()))...)
		require.NoError(t, err)
		topic := []string{"a", "b"}[i]
		tl, err := tr.Tail(ctx, topic) // from the end: before producing
		require.NoError(t, err)
		for range 10 {
			_, err := tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("v")})
			require.NoError(t, err)
		}
		c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{topic}, Start: transport.StartEarliest})
		require.NoError(t, err)
		got := pollN(t, c, 10)
		require.NoError(t, c.Commit(ctx, got...))
		pollN(t, tl, 10)
		require.NoError(t, tl.Close())
		require.NoError(t, tr.Close())
	}

	// Wrong credentials: 401s.
	bad, err := New(WithURL(s.URL), WithCredentials(user, "wrong-"+pass), fastBackoff, WithLogger(logs.logger()))
	require.NoError(t, err)
	_, err = bad.Produce(ctx, transport.Message{Topic: "a", Value: []byte("v")})
	require.Error(t, err)
	keep(err)
	_, err = bad.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"a"}})
	require.Error(t, err)
	keep(err)
	require.NoError(t, bad.Close())

	// A server that goes away: connection errors are retried, and the
	// consumer instance Close would delete cannot be.
	gone := resttest.Start(t, resttest.Config{Server: []restserver.Option{restserver.WithCredentials(user, pass)}})
	tr, err := New(WithURL(gone.URL), WithCredentials(user, pass), fastBackoff,
		WithCloseTimeout(time.Second), WithLogger(logs.logger()))
	require.NoError(t, err)
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"a"}})
	require.NoError(t, err)
	require.NoError(t, gone.REST.Close())
	gone.HTTP.Close()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = tr.Produce(short, transport.Message{Topic: "a", Value: []byte("v")})
	require.Error(t, err)
	keep(err)
	_, err = c.Poll(short)
	require.Error(t, err)
	keep(err)
	keep(tr.Close())

	out := logs.String()
	assert.Contains(t, out, "upstash: retrying request", "retries are logged at Debug")
	assert.Contains(t, out, "503", "the retried 503s are in the log")
	assert.Contains(t, out, "deleting consumer instance failed", "the failed cleanup is logged")
	secrets := []string{
		pass, user, "Authorization", "Basic ",
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		base64.StdEncoding.EncodeToString([]byte(user + ":wrong-" + pass)),
	}
	for _, secret := range secrets {
		assert.NotContains(t, out, secret, "in the log")
		for _, err := range errs {
			assert.NotContains(t, err.Error(), secret, "in an error")
		}
	}
	var he *Error
	require.ErrorAs(t, errs[0], &he)
	assert.Equal(t, http.StatusUnauthorized, he.Status)
	t.Logf("%d log lines, %d errors checked; faults injected %+v", strings.Count(out, "\n"), len(errs), s.Faults.Stats())
}
