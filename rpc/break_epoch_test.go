package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A partition that moves away while a request of it runs and comes back
// (another member joins, then leaves) is read again from the committed
// offset. The redelivered copy meets its own first delivery still in flight
// in the dedup window and is dropped as "a copy in flight": settle reports
// it done, and since it belongs to the partition's new epoch, its completion
// moves the new epoch's watermark and commits past the first delivery, which
// is still running (its ticket is of the ended epoch and holds nothing
// back). When that first delivery is then cut short by a hard stop, the
// request is never answered, never dead-lettered, and its offset is
// committed: it is lost.
func TestBreakRevokedAndBackCommitsPastRunningCopy(t *testing.T) {
	b := newBroker(t, memory.WithTopic("epochx", 1))
	t.Cleanup(func() { b.Close() })
	entered := make(chan string, 8)
	newServer := func(inst string) *rpc.Server {
		s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gx"), rpc.WithInstance(inst),
			rpc.WithDrainTimeout(100*time.Millisecond), rpc.WithConcurrency(4), silent)
		require.NoError(t, err)
		rpc.Handle(s, "epochx", func(ctx context.Context, n int) (int, error) {
			entered <- inst
			if inst == "c" {
				return n, nil // the last server answers at once
			}
			<-ctx.Done() // a long handler, cut short by the hard stop
			return 0, ctx.Err()
		})
		return s
	}
	// s1 ("b") sorts after s2 ("a"): with one partition, s2 takes it when it joins.
	stop1 := startServe(t, newServer("b"))
	c := newClient(t, b)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "epochx", 1, rpc.WithTimeout(12*time.Second))
		res <- err
	}()
	require.Equal(t, "b", <-entered)

	stop2 := startServe(t, newServer("a")) // takes the partition: s1's is revoked
	select {
	case who := <-entered:
		require.Equal(t, "a", who)
	case <-time.After(5 * time.Second):
		t.Fatal("the second server did not get the request")
	}
	require.NoError(t, stop2()) // hard stop: not committed; the partition goes back to s1

	// s1 reads offset 0 again while its first delivery still runs. Nothing
	// may be committed while it runs.
	assert.Never(t, func() bool {
		off, _ := b.Committed("gx", "epochx", 0)
		return off == 1
	}, 1500*time.Millisecond, 5*time.Millisecond,
		"offset 0 committed while its handler was still running on s1")

	require.NoError(t, stop1()) // hard stop of s1's first delivery
	startServe(t, newServer("c"))
	select {
	case err := <-res:
		require.NoError(t, err, "the request is answered by the next owner")
	case <-time.After(13 * time.Second):
		t.Fatal("Call did not return")
	}
}

// The same with one server and no rebalance by another member: a server
// whose workers are all busy stops polling; past its max poll interval the
// group drops it (OnRevoked); when a worker frees, it polls again, rejoins
// and gets its partition back from the committed offset, while the request
// that kept a worker busy still runs. The redelivered copy of that request
// is dropped as a copy in flight and completes the new epoch's slot: the
// offset is committed past the running request, and a hard stop then loses
// it.
func TestBreakMaxPollRejoinCommitsPastRunningCopy(t *testing.T) {
	b := newBroker(t, memory.WithTopic("epochm", 1))
	t.Cleanup(func() { b.Close() })
	entered := make(chan int, 16)
	release := make(chan struct{})
	newServer := func(inst string) *rpc.Server {
		s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gm"), rpc.WithInstance(inst),
			rpc.WithDrainTimeout(100*time.Millisecond), rpc.WithConcurrency(2),
			rpc.WithMaxPollInterval(300*time.Millisecond), silent)
		require.NoError(t, err)
		rpc.Handle(s, "epochm", func(ctx context.Context, n int) (int, error) {
			if inst != "a" {
				return n, nil
			}
			entered <- n
			switch n {
			case 0:
				<-ctx.Done() // runs until the hard stop
				return 0, ctx.Err()
			case 1:
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return n, nil
		})
		return s
	}
	stop1 := startServe(t, newServer("a"))
	c := newClient(t, b)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "epochm", 0, rpc.WithTimeout(12*time.Second))
		res <- err
	}()
	require.Equal(t, 0, <-entered)
	require.NoError(t, c.Notify(context.Background(), "epochm", 1))
	require.Equal(t, 1, <-entered)
	for i := 2; i < 6; i++ { // both workers busy: these fill the queue and block the poll loop
		require.NoError(t, c.Notify(context.Background(), "epochm", i))
	}
	require.Eventually(t, func() bool {
		for _, g := range b.Groups() { // like a Poll, Groups drops overdue members
			if g.Name == "gm" {
				return len(g.Members) == 0
			}
		}
		return false
	}, 5*time.Second, 10*time.Millisecond, "the server was dropped for not polling")
	close(release) // a worker frees: the server polls, rejoins, reads from offset 0 again

	assert.Never(t, func() bool {
		off, _ := b.Committed("gm", "epochm", 0)
		return off > 0
	}, 1500*time.Millisecond, 5*time.Millisecond,
		"offset 0 committed while its handler was still running")

	require.NoError(t, stop1()) // hard stop of request 0
	startServe(t, newServer("b"))
	select {
	case err := <-res:
		require.NoError(t, err, "the request is answered by the next owner")
	case <-time.After(13 * time.Second):
		t.Fatal("Call did not return")
	}
}
