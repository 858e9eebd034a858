package kafkabackend_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
)

// The brokers going down mid-run must give clear, bounded, retryable 503s.
// Before the fix:
//   - a produce hung forever (kgo's ProduceSync does not fail a record
//     whose context ends while it waits for an unreachable broker; the
//     request outlived its 3 s max timeout by minutes);
//   - /topics and the consume that creates an instance answered 500
//     "internal server error": a refused connection was not mapped to
//     restserver.ErrUnavailable.
func TestBreak6BrokersDownAre503NotHangOr500(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 2}})
	rs, err := restserver.New(c.Backend, restserver.WithMaxTimeout(2*time.Second), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	url := serve(t, rs)
	status, body := post(t, url+"/consume/g/i", `{"topic":"t","timeout":0}`)
	require.Equal(t, 200, status, body)
	status, body = post(t, url+"/produce/t", `{"value":"x"}`)
	require.Equal(t, 200, status, body)

	c.Kfake.Close()

	cl := &http.Client{Timeout: 20 * time.Second}
	do := func(method, path, body string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, nil)
		require.NoError(t, err)
		if body != "" {
			req, err = http.NewRequest(method, url+path, strings.NewReader(body))
			require.NoError(t, err)
		}
		start := time.Now()
		resp, err := cl.Do(req)
		require.NoError(t, err, "%s %s must answer within the max timeout, not hang", method, path)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assert.Less(t, time.Since(start), 10*time.Second, "%s %s", method, path)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/produce/t/x", ""},
		{"POST", "/produce/t", `{"value":"y"}`},
		{"GET", "/topics", ""},
		{"POST", "/consume/g/new", `{"topic":"t","timeout":0}`},
	} {
		status, body, h := do(rq.method, rq.path, rq.body)
		assert.Equal(t, http.StatusServiceUnavailable, status, "%s %s: %s", rq.method, rq.path, body)
		assert.Equal(t, "1", h.Get("Retry-After"), "%s %s", rq.method, rq.path)
		assert.NotContains(t, body, "goroutine", "no stack")
	}
	// The instance that had joined sees an empty poll window, not an error.
	status, body, _ = do("POST", "/consume/g/i", `{"topic":"t","timeout":0}`)
	assert.Contains(t, []int{200, 503}, status, body)
}
