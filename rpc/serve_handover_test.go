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
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// gatedServer serves "gate" on b with the given concurrency: each handler
// counts itself running (the most at once in max) and waits for release.
type gatedServer struct {
	running, max atomic.Int64
	release      chan struct{}
}

func newGatedServer(t *testing.T, b *memory.Broker, concurrency int, opts ...rpc.ServerOption) *gatedServer {
	t.Helper()
	g := &gatedServer{release: make(chan struct{})}
	s, err := rpc.NewServer(b, append([]rpc.ServerOption{rpc.WithName("gated"), quiet, rpc.WithConcurrency(concurrency)}, opts...)...)
	require.NoError(t, err)
	rpc.Handle(s, "gate", func(ctx context.Context, n int) (int, error) {
		now := g.running.Add(1)
		for m := g.max.Load(); now > m && !g.max.CompareAndSwap(m, now); m = g.max.Load() {
		}
		defer g.running.Add(-1)
		select {
		case <-g.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return n, nil
	})
	serveT(t, s)
	return g
}

// Records that arrive one at a time are run by the goroutine that polled
// them, which hands the poll loop to an idle worker: the concurrency limit
// still holds. With 3 handlers blocked, a fourth and fifth request wait,
// and run once the handlers return.
func TestHandOverKeepsTheConcurrencyLimitForLoneRecords(t *testing.T) {
	b, err := memory.New(memory.WithPartitions(2))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	g := newGatedServer(t, b, 3)
	c := newClient(t, b)

	errs := make(chan error, 5)
	for i := range 5 {
		go func() {
			_, err := rpc.Call[int](context.Background(), c, "gate", i, rpc.WithTimeout(20*time.Second))
			errs <- err
		}()
		want := int64(min(i+1, 3))
		require.Eventually(t, func() bool { return g.running.Load() == want }, 5*time.Second, time.Millisecond,
			"request %d is running", i)
	}
	// A window for a sixth goroutine to run a queued record, not a
	// readiness wait: the limit must hold throughout.
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, int64(3), g.running.Load(), "the fourth and fifth requests wait for a free handler")
	close(g.release)
	for range 5 {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, int64(3), g.max.Load(), "most handlers running at once")
}

// Many concurrent callers, batches of every size: never more handlers at
// once than the concurrency, and every call answered.
func TestHandOverKeepsTheConcurrencyLimitUnderLoad(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared queue", true: "key ordering"}[keyed], func(t *testing.T) {
			b, err := memory.New(memory.WithPartitions(4))
			require.NoError(t, err)
			t.Cleanup(func() { b.Close() })
			var opts []rpc.ServerOption
			if keyed {
				opts = append(opts, rpc.WithKeyOrdering())
			}
			g := newGatedServer(t, b, 4, opts...)
			close(g.release) // handlers return at once
			c := newClient(t, b)
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range 20 {
						out, err := rpc.Call[int](context.Background(), c, "gate", i*100+j, rpc.WithTimeout(20*time.Second))
						if !assert.NoError(t, err) {
							return
						}
						assert.Equal(t, i*100+j, out)
					}
				}()
			}
			wg.Wait()
			assert.LessOrEqual(t, g.max.Load(), int64(4), "most handlers running at once")
			assert.Positive(t, g.max.Load())
		})
	}
}
