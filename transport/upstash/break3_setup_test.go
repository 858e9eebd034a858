package upstash

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// break3: WithSetupTimeout's default (30 s) equals DefaultRequestTimeout
// (30 s), the bound of one attempt. An attempt that hangs (a keep-alive
// connection silently dead, a request lost by a load balancer) is meant to
// be abandoned after the request timeout and retried; in Tail or Subscribe
// the setup timeout ends at the same moment, so the retry that would answer
// at once never runs and rpc.NewClient fails. Run at the defaults' ratio,
// scaled down (300 ms each): the first GET /topics hangs, the retry would
// be answered at once.
func TestBreak3SetupTimeoutLeavesNoRoomForRetry(t *testing.T) {
	assert.Greater(t, DefaultSetupTimeout, DefaultRequestTimeout,
		"with the defaults a single hung attempt uses the whole setup budget")

	var topics atomic.Int64
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/topics":
			if topics.Add(1) == 1 {
				select { // the first attempt hangs until the client gives up on it
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return
			}
			_, _ = io.WriteString(w, `{"orders":1}`)
		case "/offsets/latest":
			_, _ = io.WriteString(w, `[{"topic":"orders","partition":0,"offset":0}]`)
		default:
			_, _ = io.WriteString(w, `[]`)
		}
	})
	const d = 300 * time.Millisecond
	// The defaults' ratio of setup to request timeout, scaled down.
	tr := hostileTransport(t, s, WithRequestTimeout(d), WithSetupTimeout(d*time.Duration(DefaultSetupTimeout/DefaultRequestTimeout)))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	tl, err := tr.Tail(ctx, "orders")
	require.NoError(t, err, "one hung attempt, retried and answered at once")
	_ = tl.Close()
}
