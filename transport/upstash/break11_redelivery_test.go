package upstash

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
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// commitCounter wraps a transport and counts its consumers' Commit calls.
// Its consumers keep the inner one's transport.CarryingPoller, so the rpc
// server's path is the one it takes on the bare transport.
type commitCounter struct {
	transport.Transport
	commits atomic.Int64
}

func (c *commitCounter) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	cons, err := c.Transport.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	cc := &countingConsumer{Consumer: cons, n: &c.commits}
	if cp, ok := cons.(transport.CarryingPoller); ok {
		return &countingCarrier{countingConsumer: cc, CarryingPoller: cp}, nil
	}
	return cc, nil
}

type countingConsumer struct {
	transport.Consumer
	n *atomic.Int64
}

func (c *countingConsumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	c.n.Add(1)
	return c.Consumer.Commit(ctx, msgs...)
}

type countingCarrier struct {
	*countingConsumer
	transport.CarryingPoller
}

func (c *countingCarrier) Poll(ctx context.Context) ([]transport.Message, error) {
	return c.countingConsumer.Poll(ctx)
}

// The REST API never tells a client that its instance lost partitions
// (Subscription.OnRevoked is never called), so the rpc server's tracker
// keeps a partition's epoch across a move away and back. Records done
// above one still running stay live in that epoch; when the partition
// comes back, they are read again from the group's committed offset, and
// the copies are dispatched (the dedup window answers them). Their second
// completion must not count as a second record handled and uncommitted
// (tracker.pending): it never comes off, every later record then finds a
// dedup window's size pending, and each one costs a commit round trip
// (and holds its worker for it) where a quarter as many commits did.
//
// Real parts: one REST server (memory backend, one partition) on
// loopback; the server's instance sorts after the intruder's, so the
// intruder's join takes the partition and its leave gives it back.
func TestBreak11RESTRedeliveryAboveRunningRecordInflatesPending(t *testing.T) {
	for _, awayAndBack := range []bool{false, true} {
		name := "control"
		if awayAndBack {
			name = "awayAndBack"
		}
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, serverConfig{
				broker: []memory.Option{memory.WithPartitions(1), memory.WithAutoCreate(true)},
			})
			newTr := func() transport.Transport {
				tr, err := New(WithURL(srv.URL), fastBackoff)
				require.NoError(t, err)
				t.Cleanup(func() { assert.NoError(t, tr.Close()) })
				return tr
			}
			const (
				topic  = "break11-work"
				group  = "break11-g"
				window = 8
				first  = 9  // record 0 runs long, 1..8 are done above it
				more   = 60 // handled after: counted commits
			)
			counted := &commitCounter{Transport: newTr()}
			s, err := rpc.NewServer(counted, rpc.WithName("srv"), rpc.WithInstance("z-srv"), rpc.WithGroup(group),
				rpc.WithLogger(discard), rpc.WithConcurrency(2), rpc.WithDedup(window, time.Hour),
				rpc.WithCommitInterval(time.Hour), rpc.WithDrainTimeout(time.Second))
			require.NoError(t, err)
			release := make(chan struct{})
			var (
				mu   sync.Mutex
				runs = map[int]int{}
			)
			ran := func(n int) int {
				mu.Lock()
				defer mu.Unlock()
				return runs[n]
			}
			rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) {
				mu.Lock()
				runs[n]++
				mu.Unlock()
				if n == 0 {
					select {
					case <-release:
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				return n, nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()

			c, err := rpc.NewClient(newTr(), rpc.WithName("cli"), rpc.WithLogger(discard))
			require.NoError(t, err)
			defer c.Close()
			for i := range first {
				require.NoError(t, c.Notify(ctx, topic, i))
			}
			require.Eventually(t, func() bool { return s.Stats().Handled == first-1 && ran(0) == 1 },
				20*time.Second, 5*time.Millisecond, "1..8 not handled while 0 runs")

			if awayAndBack {
				// A member that sorts first joins (it takes the partition)
				// and leaves (it gives it back, from the committed offset:
				// none, so from 0).
				intruder, err := newTr().Subscribe(ctx, transport.Subscription{
					Group: group, Instance: "a-intruder", Topics: []string{topic}, Start: transport.StartEarliest,
				})
				require.NoError(t, err)
				require.NoError(t, intruder.Close())
				require.Eventually(t, func() bool { return s.Stats().Duplicates == first-1 },
					20*time.Second, 5*time.Millisecond, "the records done above 0 were not delivered again: %+v", s.Stats())
			}
			close(release)
			require.Eventually(t, func() bool { return s.Stats().Handled >= first }, 20*time.Second, 5*time.Millisecond)
			for n := 1; n < first; n++ {
				assert.Equal(t, 1, ran(n), "record %d ran again", n)
			}

			before := counted.commits.Load()
			for i := range more {
				require.NoError(t, c.Notify(ctx, topic, first+i))
			}
			require.Eventually(t, func() bool { return s.Stats().Handled >= first+more }, 30*time.Second, 5*time.Millisecond,
				"handled %d of %d", s.Stats().Handled, first+more)
			commits := counted.commits.Load() - before
			t.Logf("%s: %d commits for %d records (window %d: one per %d expected)", name, commits, more, window, window/2)
			assert.LessOrEqual(t, commits, int64(more/2),
				"a commit for about every record: pending stayed at the window's size after everything was committed")
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Fatal("Serve did not return")
			}
		})
	}
}
