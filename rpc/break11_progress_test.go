package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// noRevokeTransport hides revocations from its subscribers, as the REST API
// does (upstash never calls Subscription.OnRevoked): the rpc server keeps a
// partition's epoch across a move away and back, and learns of the move only
// from commits refused with transport.ErrNotAssigned.
type noRevokeTransport struct{ transport.Transport }

func (n noRevokeTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	s.OnRevoked = nil
	return n.Transport.Subscribe(ctx, s)
}

// runTally counts handler runs per payload.
type runTally struct {
	mu     sync.Mutex
	runs   map[int]int
	unique atomic.Int64
	total  atomic.Int64
}

func (r *runTally) ran(n int) {
	r.mu.Lock()
	r.runs[n]++
	first := r.runs[n] == 1
	r.mu.Unlock()
	r.total.Add(1)
	if first {
		r.unique.Add(1)
	}
}

// awaitProgress waits until count reaches want, failing t when it stays
// the same for stallAfter (the servers stopped making progress) or when
// limit passes.
func awaitProgress(t *testing.T, count func() int64, want int64, stallAfter, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last, lastAt := count(), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		n := count()
		if n >= want {
			return
		}
		if n != last {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) > stallAfter {
			t.Fatalf("no progress for %v at %d of %d", stallAfter, n, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d within %v", n, want, limit)
		}
	}
}

// Thousands of records through a small dedup window (8: the workers are
// held at 8 handled and uncommitted) while a second member joins and
// leaves the group every few tens of milliseconds: partitions move away
// and back, commits are refused as not assigned, queued records of revoked
// partitions are dropped, copies are answered by dedup. With or without
// revocations reported (noRevoke: as over REST), with key ordering, with
// commits at once or paced by the interval, the group never stops making
// progress: the count of handled-and-uncommitted never keeps a worker
// held while commits succeed.
func TestBreak11WindowHoldNeverStallsUnderRebalances(t *testing.T) {
	cases := []struct {
		name     string
		noRevoke bool
		keyOrder bool
		interval time.Duration
	}{
		{"plain", false, false, 0},
		{"paced", false, false, time.Hour},
		{"keyOrdering", false, true, 0},
		{"noRevoke", true, false, 0},
		{"noRevokeKeyOrderingPaced", true, true, time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t, memory.WithPartitions(4))
			var tr transport.Transport = b
			if tc.noRevoke {
				tr = noRevokeTransport{b}
			}
			tally := &runTally{runs: map[int]int{}}
			newServer := func(name string) *rpc.Server {
				opts := []rpc.ServerOption{rpc.WithName(name), rpc.WithGroup("break11-progress"), quiet,
					rpc.WithConcurrency(4), rpc.WithDedup(8, time.Hour), rpc.WithCommitInterval(tc.interval),
					rpc.WithDrainTimeout(2 * time.Second)}
				if tc.keyOrder {
					opts = append(opts, rpc.WithKeyOrdering())
				}
				s, err := rpc.NewServer(tr, opts...)
				require.NoError(t, err)
				rpc.Handle(s, "work", func(ctx context.Context, n int) (int, error) {
					tally.ran(n)
					if n%5 == 0 { // some run longer: others finish above them
						time.Sleep(time.Duration(n%4) * 100 * time.Microsecond)
					}
					return n, nil
				})
				return s
			}
			stopA := startServe(t, newServer("a"))

			// The second member: joins, serves a while, leaves; again.
			churnCtx, stopChurn := context.WithCancel(context.Background())
			var churnWG sync.WaitGroup
			var cycles atomic.Int64
			t.Cleanup(func() { stopChurn(); churnWG.Wait() }) // also when the test fails before its end
			churnWG.Go(func() {
				for i := 0; churnCtx.Err() == nil; i++ {
					s := newServer(fmt.Sprintf("b%d", i))
					ctx, cancel := context.WithTimeout(churnCtx, time.Duration(20+i%4*15)*time.Millisecond)
					err := s.Serve(ctx)
					cancel()
					if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("churning member: Serve: %v", err)
						return
					}
					cycles.Add(1)
				}
			})

			c := newClient(t, b)
			const n = 3000
			for i := range n {
				require.NoError(t, c.Notify(context.Background(), "work", i, rpc.WithKey(fmt.Sprint(i%32))))
				if i%30 == 29 {
					time.Sleep(20 * time.Millisecond) // paces the load over ~2s of churn, not a wait for readiness
				}
			}
			awaitProgress(t, tally.unique.Load, n, 10*time.Second, 90*time.Second)
			stopChurn()
			churnWG.Wait()
			require.NoError(t, stopA())
			t.Logf("%s: %d records, %d runs (%d again), %d join/leave cycles", tc.name, n, tally.total.Load(),
				tally.total.Load()-n, cycles.Load())
			assert.Equal(t, int64(n), tally.unique.Load())
		})
	}
}
