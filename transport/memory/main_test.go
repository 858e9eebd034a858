package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait in the tests; nothing should come near it.
const wait = 5 * time.Second

// fakeClock is the broker's clock in tests: it moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (f *fakeClock) now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeClock) advance(d time.Duration) { f.ns.Add(int64(d)) }

// fixture is a broker with a fake clock and a way to see Polls block.
type fixture struct {
	*Broker
	clock *fakeClock

	mu      sync.Mutex
	onBlock map[*Consumer]func() // run when that consumer's Poll is about to block
}

func newFixture(t testing.TB, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{Broker: newBroker(t, opts...), clock: &fakeClock{}, onBlock: map[*Consumer]func(){}}
	f.clock.ns.Store(time.Date(2025, 3, 11, 12, 0, 0, 0, time.UTC).UnixNano())
	f.now = f.clock.now
	f.Broker.onBlock = func(c *Consumer) {
		f.mu.Lock()
		h := f.onBlock[c]
		f.mu.Unlock()
		if h != nil {
			h()
		}
	}
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	return f
}

// whenBlocked runs h each time c's Poll is about to block (nil: stop).
func (f *fixture) whenBlocked(c *Consumer, h func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.onBlock, c)
		return
	}
	f.onBlock[c] = h
}

// pollEmpty asserts that c has nothing to deliver: its Poll blocks (and is
// then cancelled from the hook, in the polling goroutine itself).
func (f *fixture) pollEmpty(t testing.TB, c *Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	f.whenBlocked(c, cancel)
	defer f.whenBlocked(c, nil)
	msgs, err := c.Poll(ctx)
	require.ErrorIs(t, err, context.Canceled, "Poll should have blocked, got %d records", len(msgs))
	require.Empty(t, msgs)
}

// blockedSignal returns a channel that receives each time c's Poll blocks.
func (f *fixture) blockedSignal(c *Consumer) <-chan struct{} {
	ch := make(chan struct{}, 16)
	f.whenBlocked(c, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch
}

func (f *fixture) join(t testing.TB, s transport.Subscription) *Consumer {
	t.Helper()
	c, err := f.Broker.join(context.Background(), s)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (f *fixture) produce(t testing.TB, msgs ...transport.Message) []transport.Message {
	t.Helper()
	out, err := f.Produce(context.Background(), msgs...)
	require.NoError(t, err)
	require.Len(t, out, len(msgs))
	return out
}

// produceTo appends n records with values "<prefix>-<i>" to a partition.
func (f *fixture) produceTo(t testing.TB, topic string, partition int32, prefix string, n int) []transport.Message {
	t.Helper()
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{Topic: topic, Partition: partition, ManualPartition: true,
			Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	return f.produce(t, msgs...)
}

// pollN polls c until it has returned exactly n records in all.
func pollN(t testing.TB, c transport.Consumer, n int) []transport.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var got []transport.Message
	for len(got) < n {
		msgs, err := c.Poll(ctx)
		require.NoError(t, err, "after %d of %d records", len(got), n)
		got = append(got, msgs...)
	}
	require.Len(t, got, n, "more records than expected")
	return got
}

// values returns the Values of msgs as strings.
func values(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}

// offsets returns the Offsets of msgs.
func offsetsOf(msgs []transport.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Offset
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// newBroker returns New(opts...), failing tb on an error.
func newBroker(tb testing.TB, opts ...Option) *Broker {
	tb.Helper()
	b, err := New(opts...)
	require.NoError(tb, err)
	return b
}
