package resttest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	require.NoError(t, err)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Both ways of serving answer with the configured broker, server options
// and backend.
func TestStart(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	for _, serve := range []bool{false, true} {
		wrapped := false
		s := resttest.Start(t, resttest.Config{
			Broker: []memory.Option{memory.WithTopic("t", 2)},
			Server: []restserver.Option{restserver.WithCredentials("u", "p")},
			Backend: func(b restserver.Backend) restserver.Backend {
				wrapped = true
				return b
			},
			Serve: serve,
		})
		assert.True(t, wrapped, "serve=%v", serve)
		assert.Equal(t, serve, s.HTTP == nil)
		assert.Nil(t, s.Faults)
		status, body := get(t, s.URL+"/topics")
		assert.Equal(t, http.StatusOK, status, "serve=%v", serve)
		assert.Equal(t, `{"t":2}`, body, "serve=%v", serve)
		assert.Equal(t, uint64(1), s.REST.Stats().Requests)
		req, err := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/topics", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the credentials are checked")
	}
}
