package rpc_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// crashTransport lets a test "crash" the request consumer of one server
// (close it, so that it leaves the group without a commit) right after a
// chosen Produce, and fails its commits meanwhile.
type crashTransport struct {
	transport.Transport
	group      string
	mu         sync.Mutex
	cons       transport.Consumer
	afterWrite func(msgs []transport.Message) bool // true: crash now
	crashed    atomic.Bool
}

func (c *crashTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	out, err := c.Transport.Produce(ctx, msgs...)
	if err == nil && c.afterWrite != nil && c.afterWrite(msgs) && c.crashed.CompareAndSwap(false, true) {
		c.mu.Lock()
		cons := c.cons
		c.mu.Unlock()
		_ = cons.Close() // the process dies: its member leaves, nothing more committed
	}
	return out, err
}

func (c *crashTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	cons, err := c.Transport.Subscribe(ctx, s)
	if err != nil || s.Group != c.group {
		return cons, err
	}
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
	return &failCommit{cons}, nil
}

type failCommit struct{ transport.Consumer }

func (f *failCommit) Commit(context.Context, ...transport.Message) error {
	return fmt.Errorf("commit lost: %w", rpctest.ErrInjected)
}

// README, Guarantees: the dedup window "is written to <group>.handled
// together with each reply, in one produce, and replayed by Serve before it
// takes requests, so it outlives a crash and is shared by the instances of
// a group": a request handled within the window is not run again.
//
// A server that crashes after its reply and marker were written, before its
// commit, hands the partition to a live instance of the group at once. That
// instance replayed the dedup topic only when it started; afterwards it
// follows the topic in batches (dedupFollowInterval between reads)
// and nothing makes it catch up when a partition is assigned to it: the
// redelivered requests run again although their markers are in the topic.
func TestBreakDedupNotCaughtUpOnAssignment(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	b := newBroker(t, memory.WithTopic("dedupx", 1))
	t.Cleanup(func() { b.Close() })
	runs := newRunCounter()
	const n = 6
	ct := crashAfterMarkers(b, "gd", n)
	newServer := func(tr transport.Transport, inst string) *rpc.Server {
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("gd"), rpc.WithInstance(inst),
			rpc.WithConcurrency(1), silent)
		require.NoError(t, err)
		rpc.Handle(s, "dedupx", func(ctx context.Context, i int) (int, error) {
			runs.enter(i)
			return i, nil
		})
		return s
	}
	// s1 ("a") owns the one partition; s2 ("b") is an idle, caught-up member.
	stop1 := startServe(t, newServer(ct, "a"))
	startServe(t, newServer(b, "b"))
	bothJoined(t, b, "gd")
	c := newClient(t, b)
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "dedupx", i))
	}
	require.Eventually(t, ct.crashed.Load, 5*time.Second, time.Millisecond, "s1 handled every request and crashed")
	_ = stop1()
	committedAt(t, b, "gd", "dedupx", 0, n) // s2 took over and committed
	for i, k := range runs.twice() {
		t.Errorf("request %d ran %d times within the dedup window", i, k)
	}
}

// crashAfterMarkers is b, crashing (see crashTransport) once the n-th
// dedup marker of group is written.
func crashAfterMarkers(b *memory.Broker, group string, n int64) *crashTransport {
	var markers atomic.Int64
	return &crashTransport{Transport: b, group: group, afterWrite: func(msgs []transport.Message) bool {
		for _, m := range msgs {
			if m.Topic == group+".handled" {
				if _, ok := m.Header("rpc-dedup-of"); ok && markers.Add(1) == n {
					return true
				}
			}
		}
		return false
	}}
}

// bothJoined waits until group has two members.
func bothJoined(t *testing.T, b *memory.Broker, group string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, g := range b.Groups() {
			if g.Name == group && len(g.Members) == 2 {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond, "both servers joined")
}
