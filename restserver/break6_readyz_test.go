package restserver_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/restserver"
)

// countingReady counts the backend checks /readyz makes.
type countingReady struct {
	restserver.Backend
	n *atomic.Int64
}

func (c countingReady) Ready(context.Context) error { c.n.Add(1); return nil }

// TestBreak6ReadyzDoesNotAmplifyToTheBrokers: /readyz is unauthenticated,
// and every probe ran its own backend check (over Kafka, a metadata
// request to the brokers): anyone who can reach the port could turn a
// flood of cheap probes into as many broker requests. Now one check runs
// at a time and its result answers the probes of the next second.
func TestBreak6ReadyzDoesNotAmplifyToTheBrokers(t *testing.T) {
	var n atomic.Int64
	e := newEnv(t, envConfig{wrap: func(b restserver.Backend) restserver.Backend { return countingReady{b, &n} }})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				r := e.req("GET", "/readyz", "", noAuth...)
				assert.Equal(t, http.StatusOK, r.status)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, n.Load(), int64(5), "200 probes made %d backend checks", n.Load())
}
