package restserver_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBodyReadConnectionReused: the server closes a request body once it
// has read all of its declared length (so net/http need not read on to its
// end); every request, a refused one included, leaves the connection
// reusable, and the next request on it is served.
func TestBodyReadConnectionReused(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.createTopic("t", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	steps := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPost, "/produce", `{"topic":"t","value":"a"}`, http.StatusOK},
		{http.MethodPost, "/produce", `{"topic":"t","value":`, http.StatusBadRequest},
		{http.MethodPost, "/consume/g/i", `{"topics":["t"],"timeout":0}`, http.StatusOK},
		{http.MethodPost, "/consume/g/i", `{"topics":["t"],"timeout":0,"produce":[{"topic":"t","value":"b"}]}`, http.StatusOK},
		{http.MethodPost, "/fetch", `{"topic":"t","partition":0,"offset":0,"timeout":0}`, http.StatusOK},
		{http.MethodPost, "/produce/t", `not json`, http.StatusBadRequest},
		{http.MethodGet, "/produce/t/c", ``, http.StatusOK},
	}
	for i, st := range steps {
		reused := false
		idle := make(chan error, 1)
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn:     func(info httptrace.GotConnInfo) { reused = info.Reused },
			PutIdleConn: func(err error) { idle <- err },
		})
		var rd io.Reader
		if st.body != "" {
			rd = strings.NewReader(st.body)
		}
		r, err := http.NewRequestWithContext(tctx, st.method, e.url+st.path, rd)
		require.NoError(t, err)
		r.SetBasicAuth(testUser, testPass)
		resp, err := e.client.Do(r)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, st.status, resp.StatusCode, "%s %s: %s", st.method, st.path, b)
		require.False(t, resp.Close, "%s %s: the server closes the connection", st.method, st.path)
		if i > 0 {
			require.True(t, reused, "%s %s: a new connection", st.method, st.path)
		}
		// net/http returns the connection to its idle pool on its own
		// goroutine, after Close: the next request waits for it, or it
		// may dial a new connection that says nothing about this one.
		select {
		case err := <-idle:
			require.NoError(t, err, "%s %s: the connection was not kept", st.method, st.path)
		case <-ctx.Done():
			t.Fatalf("%s %s: the connection did not return to the idle pool", st.method, st.path)
		}
	}
	require.Equal(t, int64(3), e.latest("t", 0), "a, b and c were written")
}
