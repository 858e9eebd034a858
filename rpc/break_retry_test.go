package rpc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// A hard stop (drain timeout) that comes while a handler's Retryable error
// waits for its next attempt ends the retry loop with the handler's last
// error, not context.Canceled: invoke takes it for retries exhausted, and
// the request is dead-lettered and its caller told it failed for good,
// although only the stop cut its retries short. A handler canceled by the
// stop is redelivered instead (outAgain); so should this one be.
func TestBreakHardStopDuringRetryDeadLetters(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var attempts atomic.Int64
	first := make(chan struct{})
	newServer := func() *rpc.Server {
		s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("grx"),
			rpc.WithRetry(3, 2*time.Second), rpc.WithDrainTimeout(100*time.Millisecond), silent)
		require.NoError(t, err)
		rpc.Handle(s, "retryx", func(ctx context.Context, n int) (int, error) {
			if attempts.Add(1) == 1 {
				close(first)
				return 0, rpc.Retryable(errors.New("backend busy"))
			}
			return n, nil
		})
		return s
	}
	stop1 := startServe(t, newServer())
	c := newClient(t, b)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "retryx", 7, rpc.WithTimeout(10*time.Second))
		res <- err
	}()
	<-first
	require.NoError(t, stop1()) // the hard stop comes during the 2s wait before attempt 2
	startServe(t, newServer())
	select {
	case err := <-res:
		assert.NoError(t, err, "the request is redelivered and succeeds, not failed for good by the stop")
	case <-time.After(12 * time.Second):
		t.Fatal("Call did not return")
	}
	if _, end, err := b.Offsets("retryx.dlq", 0); err == nil {
		assert.Equal(t, int64(0), end, "nothing dead-lettered")
	}
}
