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

// The fix for TestBreakRESTCommitBackwardsAfterPartitionCameBack makes the
// broker refuse the stale commit with ErrNotAssigned. Over REST, OnRevoked
// is never called: by the time the stale commit is refused, the server has
// already been polling the partition's new assignment in the same epoch.
// When the committer first ended the whole epoch on that refusal, a record
// of the new assignment still running was forgotten, the next record opened
// a new epoch that knew nothing of it, and its commit (accepted: above where
// the assignment began) passed the running request; a hard stop or crash
// then lost it. The committer now gives up only the refused mark
// (tracker.refused), keeping the bookkeeping of what still runs.
func TestBreak2RESTLostEpochCommitsPastRunningRequest(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("lost2", 1)}})
	newTr := func() *Transport {
		tr, err := New(WithURL(srv.URL), guaranteeBackoff)
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))
	entered := make(chan int, 8)
	release0, release4 := make(chan struct{}), make(chan struct{})
	var once0, once4 sync.Once
	rel0 := func() { once0.Do(func() { close(release0) }) }
	rel4 := func() { once4.Do(func() { close(release4) }) }
	t.Cleanup(rel0)
	t.Cleanup(rel4)
	newServer := func(inst string) *rpc.Server {
		s, err := rpc.NewServer(newTr(), rpc.WithName("srv"), rpc.WithGroup("gl2"), rpc.WithInstance(inst), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "lost2", func(ctx context.Context, n int) (int, error) {
			if inst == "b" {
				switch n {
				case 0:
					entered <- n
					<-release0 // a long request, still running when the partition comes back
				case 4:
					entered <- n
					<-release4 // a long request of the partition's new assignment
				}
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
	committed := func() int64 {
		off, err := srv.Broker.Committed("gl2", "lost2", 0)
		require.NoError(t, err)
		return off
	}
	waitEntered := func(want int) {
		t.Helper()
		select {
		case n := <-entered:
			require.Equal(t, want, n)
		case <-time.After(10 * time.Second):
			t.Fatalf("handler for %d not entered", want)
		}
	}

	serve(newServer("b"))
	c, err := rpc.NewClient(newTr(), rpc.WithName("cli"), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Notify(context.Background(), "lost2", 0))
	waitEntered(0)
	stop2 := serve(newServer("a")) // "a" sorts first: it takes the one partition
	require.Eventually(t, func() bool {
		for _, g := range srv.Broker.Groups() {
			if g.Name == "gl2" {
				for _, m := range g.Members {
					if m.Instance == "a" && len(m.Assignment["lost2"]) == 1 {
						return true
					}
				}
			}
		}
		return false
	}, 10*time.Second, 2*time.Millisecond, "the second server owns the partition")
	for i := 1; i <= 3; i++ {
		require.NoError(t, c.Notify(context.Background(), "lost2", i))
	}
	require.Eventually(t, func() bool { return committed() == 4 }, 10*time.Second, 5*time.Millisecond,
		"the second server handled 0..3 and committed")
	stop2() // the partition goes back to "b", from offset 4

	require.NoError(t, c.Notify(context.Background(), "lost2", 4)) // offset 4: runs long on "b"
	waitEntered(4)
	rel0() // the old request ends: its stale commit is refused, the epoch ends
	// Offset 4 is still running: the group must not commit past it, however
	// many requests follow (sent one at a time, so that some are polled
	// after the refused commit ended the epoch).
	var past bool
	for k := 5; k < 40 && !past; k++ {
		require.NoError(t, c.Notify(context.Background(), "lost2", k))
		past = !assert.Never(t, func() bool { return committed() > 4 }, 100*time.Millisecond, 5*time.Millisecond,
			"the group committed past offset 4 while its request was still running (after %d more requests)", k-4)
	}
	t.Logf("committed offset: %d (offset 4 still running)", committed())
	rel4()
}
