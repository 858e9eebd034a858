package restserver_test

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
)

func latest(t *testing.T, e *env, topic string) int64 {
	t.Helper()
	_, end, err := e.broker.Offsets(topic, 0)
	require.NoError(t, err)
	return end
}

func TestFaultUnavailable(t *testing.T) {
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithFaults(restserver.Faults{Unavailable: 1})}})
	r := e.req("POST", "/produce/faulty", `{"value":"v"}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"error":"injected fault: service unavailable","status":503}`, r.body)
	assert.Equal(t, int64(1), e.srv.FaultStats().Unavailable)
	_, _, err := e.broker.Offsets("faulty", 0)
	assert.Error(t, err, "nothing was written: the topic was never created")
}

func TestFaultSlow(t *testing.T) {
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithFaults(restserver.Faults{Slow: 1, SlowDelay: 50 * time.Millisecond})}})
	start := time.Now()
	r := e.req("POST", "/produce/slow", `{"value":"v"}`)
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	assert.Equal(t, int64(1), e.srv.FaultStats().Slow)
}

// rawPost posts without the env's helpers, which fail on transport errors.
func rawPost(t *testing.T, e *env, path, body string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	resp, err := e.client.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return err
}

func TestFaultReset(t *testing.T) {
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithFaults(restserver.Faults{Reset: 1})}})
	require.NoError(t, e.broker.CreateTopic("reset", 1))
	err := rawPost(t, e, "/produce/reset", `{"value":"v"}`)
	require.Error(t, err, "connection closed without a response")
	assert.Equal(t, int64(0), latest(t, e, "reset"), "reset before handling: nothing written")
	assert.GreaterOrEqual(t, e.srv.FaultStats().Reset, int64(1))
}

func TestFaultResetAfterWork(t *testing.T) {
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithFaults(restserver.Faults{ResetAfter: 1})}})
	require.NoError(t, e.broker.CreateTopic("lost", 1))
	err := rawPost(t, e, "/produce/lost", `{"value":"v"}`)
	require.Error(t, err, "the response is lost")
	assert.Equal(t, int64(1), latest(t, e, "lost"), "but the record was written: a retry would duplicate it")
	assert.Equal(t, int64(1), e.srv.FaultStats().ResetAfter)
}
