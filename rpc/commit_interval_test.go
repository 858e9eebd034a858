package rpc_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// WithCommitInterval: many records handled within one interval are
// committed by few commits; a lone record is committed without waiting for
// more; and what was handled is committed when Serve stops, however
// recently.
func TestCommitInterval(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var commits atomic.Int64
	ht := &hookTransport{Transport: b, commit: func(_ context.Context, msgs []transport.Message) error {
		for _, m := range msgs {
			if m.Topic == "paced" {
				commits.Add(1)
			}
		}
		return nil
	}}
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("paced"), quiet,
		rpc.WithConcurrency(8), rpc.WithCommitInterval(time.Hour))
	require.NoError(t, err)
	rpc.Handle(s, "paced", func(ctx context.Context, n int) (int, error) { return n, nil })
	stop := startServe(t, s)
	c := newClient(t, b)

	// The first record: no commit before it, so it is committed at once.
	_, err = c.Call(context.Background(), "paced", 0, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err)
	// (The hook counts a commit before it reaches the broker: wait for
	// the broker's committed offset, not for the count. break5: waiting
	// for the count alone read the offset before the commit landed.)
	require.Eventually(t, func() bool {
		off, err := b.Committed("paced", "paced", 0)
		return err == nil && off == 1
	}, 5*time.Second, time.Millisecond)
	assert.Equal(t, int64(1), commits.Load())

	// The next 50 fall within the interval: not committed while serving.
	var wg sync.WaitGroup
	for i := 1; i <= 50; i++ {
		wg.Go(func() {
			_, err := c.Call(context.Background(), "paced", i, rpc.WithTimeout(5*time.Second))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1), commits.Load(), "no commit before the interval passed")

	// Stopping commits everything handled.
	require.NoError(t, stop())
	off, err := b.Committed("paced", "paced", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(51), off, "every handled request is committed at the stop")
	assert.Equal(t, int64(2), commits.Load())
}

// With WithCommitInterval(0), each moved watermark is committed as soon as
// it moves, as before the option existed.
func TestCommitIntervalZero(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("eager"), quiet, rpc.WithCommitInterval(0))
	require.NoError(t, err)
	rpc.Handle(s, "eager", func(ctx context.Context, n int) (int, error) { return n, nil })
	serveT(t, s)
	c := newClient(t, b)
	for i := range 3 {
		_, err = c.Call(context.Background(), "eager", i, rpc.WithTimeout(5*time.Second))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			off, err := b.Committed("eager", "eager", 0)
			return err == nil && off == int64(i+1)
		}, 5*time.Second, time.Millisecond, "call %d committed while serving", i)
	}
}
