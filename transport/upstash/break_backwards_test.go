package upstash

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Over REST, OnRevoked is never called: a server learns that a partition
// moved only from a Commit failing with ErrNotAssigned. When the partition
// moves away while a request of it runs and comes back before that request
// completes, nothing fails: the request's slot is still the tracker's, it
// completes, the watermark moves to it, and the commit (the server owns the
// partition again) stores an offset below what the other member committed
// meanwhile. The group's committed offset goes backwards, and the records
// between are run again by the partition's next reader (the issue's "known
// one, left open": stale slots commit backwards).
func TestBreakRESTCommitBackwardsAfterPartitionCameBack(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("backr", 1)}})
	newTr := func() *Transport {
		tr, err := New(WithURL(srv.URL), guaranteeBackoff)
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))
	entered, release := make(chan int, 8), make(chan struct{})
	newServer := func(inst string) *rpc.Server {
		s, err := rpc.NewServer(newTr(), rpc.WithName("srv"), rpc.WithGroup("gbr"), rpc.WithInstance(inst), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "backr", func(ctx context.Context, n int) (int, error) {
			if inst == "b" && n == 0 {
				entered <- n
				<-release // a long request, still running when the partition comes back
			}
			return n, nil
		})
		return s
	}
	serve := func(s *rpc.Server) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					t.Error("Serve did not return")
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	committed := func() int64 {
		off, err := srv.Broker.Committed("gbr", "backr", 0)
		require.NoError(t, err)
		return off
	}

	serve(newServer("b"))
	c, err := rpc.NewClient(newTr(), rpc.WithName("cli"), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Notify(context.Background(), "backr", 0))
	<-entered
	stop2 := serve(newServer("a")) // "a" sorts first: it takes the one partition
	require.Eventually(t, func() bool {
		for _, g := range srv.Broker.Groups() {
			if g.Name == "gbr" {
				for _, m := range g.Members {
					if m.Instance == "a" && len(m.Assignment["backr"]) == 1 {
						return true
					}
				}
			}
		}
		return false
	}, 10*time.Second, 2*time.Millisecond, "the second server owns the partition")
	for i := 1; i <= 3; i++ {
		require.NoError(t, c.Notify(context.Background(), "backr", i))
	}
	require.Eventually(t, func() bool { return committed() == 4 }, 10*time.Second, 5*time.Millisecond,
		"the second server handled 0..3 and committed")
	stop2() // the partition goes back to "b"
	releaseOnce.Do(func() { close(release) })
	assert.Never(t, func() bool { return committed() < 4 }, 2*time.Second, 5*time.Millisecond,
		"the group's committed offset went backwards")
	t.Logf("committed offset at the end: %d (was 4)", committed())
}
