package memory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak5ConcurrentDurableLoad: producers on several partitions,
// consumers committing, topics created, segments rolling and retention
// deleting them, all at once under FsyncAlways (group commit), then a
// restart: every acknowledged record still retained reads back at its
// offset, offsets are dense, and the last commit of each group survives.
// Run with -race. (An attack that failed: kept as a guard.)
func TestBreak5ConcurrentDurableLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := []Option{WithSegmentBytes(2048), WithRetention(300, 1<<30), WithPartitions(3)}
	b := openDurable(t, dir, nil, opts...)
	var (
		mu    sync.Mutex
		acked = map[[2]int64]string{}
		last  = map[string]int64{}
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				msgs := make([]transport.Message, 1+i%5)
				for j := range msgs {
					msgs[j] = transport.Message{Topic: "s", Key: fmt.Sprint(w, "-", i, "-", j), Value: []byte(fmt.Sprint("v", w, "-", i, "-", j))}
				}
				out, err := b.Produce(ctx, msgs...)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				for _, m := range out {
					acked[[2]int64{int64(m.Partition), m.Offset}] = string(m.Value)
				}
				mu.Unlock()
			}
		}()
	}
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("g", g)
			c, err := b.Subscribe(ctx, transport.Subscription{Group: name, Topics: []string{"s"}, Start: transport.StartEarliest})
			if !assert.NoError(t, err) {
				return
			}
			for off := int64(1); off <= 200; off++ {
				if !assert.NoError(t, c.(*Consumer).CommitOffsets(ctx, transport.Offset{Topic: "s", Partition: int32(off % 3), Offset: off})) {
					return
				}
				mu.Lock()
				last[fmt.Sprint(name, "/", off%3)] = off
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 30 {
			assert.NoError(t, b.CreateTopic(fmt.Sprint("x", i), 2))
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	require.NoError(t, b.Close())

	b2 := openDurable(t, dir, nil, opts...)
	for p := range int32(3) {
		e, l, err := b2.Offsets("s", p)
		require.NoError(t, err)
		recs, err := b2.Fetch(ctx, "s", p, e, 100_000)
		require.NoError(t, err)
		require.Len(t, recs, int(l-e))
		for i, r := range recs {
			require.Equal(t, e+int64(i), r.Offset)
			if v, ok := acked[[2]int64{int64(p), r.Offset}]; ok {
				require.Equal(t, v, string(r.Value))
			}
		}
		for k := range acked {
			if k[0] == int64(p) {
				require.Less(t, k[1], l, "acknowledged offset past the end after restart")
			}
		}
	}
	for k, off := range last {
		var g string
		var p int32
		fmt.Sscanf(k, "%2s/%d", &g, &p)
		got, err := b2.Committed(g, "s", p)
		require.NoError(t, err)
		assert.Equal(t, off, got, k)
	}
	assert.Len(t, b2.Topics(), 31)
}
