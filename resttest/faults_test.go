package resttest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/resttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// post posts body to path and returns the response, read whole, or the
// transport error.
func post(t *testing.T, s *resttest.Server, path, body string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := s.HTTP.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), nil
}

// latest returns the offset the next record of partition 0 of topic will get.
func latest(t *testing.T, s *resttest.Server, topic string) int64 {
	t.Helper()
	_, end, err := s.Broker.Offsets(topic, 0)
	require.NoError(t, err)
	return end
}

func TestFaultUnavailable(t *testing.T) {
	s := resttest.Start(t, resttest.Config{Faults: &resttest.Faults{Unavailable: 1}})
	status, body, err := post(t, s, "/produce/faulty", `{"value":"v"}`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.JSONEq(t, `{"error":"injected fault: service unavailable","status":503}`, body)
	assert.Equal(t, resttest.FaultStats{Unavailable: 1}, s.Faults.Stats())
	_, _, err = s.Broker.Offsets("faulty", 0)
	assert.Error(t, err, "nothing was written: the topic was never created")
	assert.Zero(t, s.REST.Stats().Requests, "the server never saw the request")
}

func TestFaultSlow(t *testing.T) {
	s := resttest.Start(t, resttest.Config{Faults: &resttest.Faults{Slow: 1, SlowDelay: 50 * time.Millisecond}})
	start := time.Now()
	status, body, err := post(t, s, "/produce/slow", `{"value":"v"}`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status, body)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	assert.Equal(t, resttest.FaultStats{Slow: 1}, s.Faults.Stats())
}

func TestFaultReset(t *testing.T) {
	s := resttest.Start(t, resttest.Config{Faults: &resttest.Faults{Reset: 1}})
	require.NoError(t, s.Broker.CreateTopic("reset", 1))
	_, _, err := post(t, s, "/produce/reset", `{"value":"v"}`)
	require.Error(t, err, "connection closed without a response")
	assert.Equal(t, int64(0), latest(t, s, "reset"), "reset before handling: nothing written")
	assert.GreaterOrEqual(t, s.Faults.Stats().Reset, int64(1))
}

func TestFaultResetAfterWork(t *testing.T) {
	s := resttest.Start(t, resttest.Config{Faults: &resttest.Faults{ResetAfter: 1}})
	require.NoError(t, s.Broker.CreateTopic("lost", 1))
	_, _, err := post(t, s, "/produce/lost", `{"value":"v"}`)
	require.Error(t, err, "the response is lost")
	assert.Equal(t, int64(1), latest(t, s, "lost"), "but the record was written: a retry would duplicate it")
	assert.Equal(t, int64(1), s.Faults.Stats().ResetAfter)
}

// Without a Hijacker (here an httptest.ResponseRecorder) the connection
// faults cannot strike: the request is served.
func TestFaultsNeedHijacker(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	h := resttest.NewFaultHandler(ok, resttest.Faults{Reset: 1, ResetAfter: 1})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, "ok", rec.Body.String())
	assert.Zero(t, h.Stats())
}

// The zero Faults injects nothing; the same seed gives the same faults.
func TestFaultsSeed(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	run := func(f resttest.Faults) (resttest.FaultStats, []int) {
		h := resttest.NewFaultHandler(ok, f)
		var codes []int
		for range 50 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			codes = append(codes, rec.Code)
		}
		return h.Stats(), codes
	}
	st, _ := run(resttest.Faults{})
	assert.Zero(t, st)
	f := resttest.Faults{Seed: 9, Unavailable: 0.5}
	st1, codes1 := run(f)
	st2, codes2 := run(f)
	assert.Positive(t, st1.Unavailable)
	assert.Less(t, st1.Unavailable, int64(50))
	assert.Equal(t, st1, st2)
	assert.Equal(t, codes1, codes2)
}

// A slow request whose client gives up is dropped without being served.
func TestFaultSlowCanceled(t *testing.T) {
	served := false
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true })
	h := resttest.NewFaultHandler(next, resttest.Faults{Slow: 1, SlowDelay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	assert.False(t, served)
	assert.Equal(t, resttest.FaultStats{Slow: 1}, h.Stats())
}
