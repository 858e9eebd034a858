package upstash

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// burstSpy counts keep-alives and the most in flight at once.
type burstSpy struct {
	base            *http.Transport
	sent, now, most atomic.Int64
}

func (s *burstSpy) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/committed/") {
		return s.base.RoundTrip(r)
	}
	s.sent.Add(1)
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	return s.base.RoundTrip(r)
}

// Many consumers on one Transport whose owners do not poll: each costs one
// goroutine for its keep-alive, and Transport.Close ends them all.
func TestBreak21KeepAliveManyConsumers(t *testing.T) {
	const n = 300
	s := startServer(t, serverConfig{})
	spy := &burstSpy{base: &http.Transport{MaxIdleConnsPerHost: 1024}}
	t.Cleanup(spy.base.CloseIdleConnections)
	tr, err := New(WithURL(s.URL), fastBackoff, WithInstanceKeepAlive(time.Second), WithHTTPClient(&http.Client{Transport: spy}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			_, err := tr.Subscribe(ctx, transport.Subscription{Group: fmt.Sprint("g", i), Topics: []string{"jobs"}})
			if err != nil {
				failed.Add(1)
				t.Log(err)
			}
		})
	}
	wg.Wait()
	t.Logf("subscribed %d in %v", n, time.Since(start))
	require.Zero(t, failed.Load())
	require.Eventually(t, func() bool { return keepAlives() == n }, 10*time.Second, 10*time.Millisecond)
	t.Logf("goroutines per consumer: %.2f", float64(runtime.NumGoroutine()-before)/n)
	sent := spy.sent.Load()
	require.Eventually(t, func() bool { return spy.sent.Load() >= sent+2*n }, 30*time.Second, 10*time.Millisecond)
	t.Logf("keep-alives: %d, most in flight %d", spy.sent.Load(), spy.most.Load())
	assert.Equal(t, n, s.REST.Stats().Instances)
	require.NoError(t, tr.Close())
	assert.Zero(t, keepAlives())
	assert.Zero(t, s.REST.Stats().Instances)
}
