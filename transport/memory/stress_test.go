package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestConcurrentStress runs producers, group members that come and go, a
// tail reader and observers at once (meant for -race). Every record must
// reach the group at least once and the tail exactly once, in order.
func TestConcurrentStress(t *testing.T) {
	b := newBroker(t, WithTopic("s", 4), WithMaxPollRecords(17))
	defer b.Close()
	const producers, perProducer = 4, 2000
	const total = producers * perProducer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, stop := context.WithCancel(ctx) // ends when the group has seen everything
	defer stop()

	tail, err := b.Tail(ctx, "s")
	require.NoError(t, err)
	defer tail.Close()

	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	record := func(msgs []transport.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			seen[string(m.Value)]++
		}
		if len(seen) == total {
			stop()
		}
	}
	// member reads as inst until run ends, or leaves after limit records.
	member := func(inst string, limit int) {
		c, err := b.join(ctx, transport.Subscription{Group: "g", Instance: inst, Topics: []string{"s"}, Start: transport.StartEarliest})
		if !assert.NoError(t, err) {
			return
		}
		defer c.Close()
		n := 0
		for n < limit {
			msgs, err := c.Poll(run)
			if err != nil {
				assert.ErrorIs(t, err, context.Canceled)
				return
			}
			record(msgs)
			n += len(msgs)
			if err := c.Commit(context.Background(), msgs...); err != nil {
				// The partition may have moved in a rebalance.
				assert.ErrorIs(t, err, transport.ErrNotAssigned)
			}
		}
	}

	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProducer; {
				var batch []transport.Message
				for j := 0; j <= i%3 && i < perProducer; j++ {
					batch = append(batch, transport.Message{Topic: "s", Key: fmt.Sprint(i % 10),
						Value: fmt.Appendf(nil, "%d-%d", p, i)})
					i++
				}
				_, err := b.Produce(ctx, batch...)
				assert.NoError(t, err)
			}
		})
	}
	wg.Go(func() { member("m0", 150) }) // leaves early
	wg.Go(func() { member("m1", total*2) })
	wg.Go(func() {
		member("m2", 200)
		member("m3", total*2) // joins after m2 left
	})
	wg.Go(func() { // observers
		for run.Err() == nil {
			_ = b.Groups()
			_, _, err := b.Offsets("s", 1)
			assert.NoError(t, err)
			fctx, fcancel := context.WithTimeout(run, time.Millisecond)
			_, err = b.Fetch(fctx, "s", 2, 0, 5)
			fcancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("Fetch: %v", err)
			}
		}
	})

	// The tail sees every record once, in offset order per partition.
	next := map[int32]int64{}
	got := 0
	for got < total {
		msgs, err := tail.Poll(ctx)
		require.NoError(t, err, "tail after %d records", got)
		for _, m := range msgs {
			require.Equal(t, next[m.Partition], m.Offset, "partition %d", m.Partition)
			next[m.Partition]++
		}
		got += len(msgs)
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "the group did not see every record in time")
	require.Equal(t, total, got)
	require.Len(t, seen, total, "every record reached the group")
	for p := range int32(4) {
		_, latest, err := b.Offsets("s", p)
		require.NoError(t, err)
		require.Equal(t, next[p], latest)
	}
}
