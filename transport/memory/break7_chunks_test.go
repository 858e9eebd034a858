package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// modelRec is what the reference model of a partition keeps per record.
type modelRec struct {
	off   int64
	val   string
	t     int64 // ms
	added int64 // ms
	size  int64
}

// TestBreak7ChunkedLogMatchesModel appends batches of random sizes with
// random (often decreasing) times and random retention to a partition and
// compares every observable (offsets, reads at every offset, offsetForTime
// for many times) with a plain slice model, across many chunk boundaries
// and spare-chunk reuses.
func TestBreak7ChunkedLogMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			cfg := defaults()
			cfg.retentionRecords = 1 + rng.IntN(300)
			cfg.retentionBytes = int64(1 + rng.IntN(4000))
			cfg.retentionAge = time.Duration(1+rng.IntN(500)) * time.Millisecond
			tp := newTopic("t", 1)
			p := tp.parts[0]
			var model []modelRec
			var base int64
			nowMs := int64(1_000_000)
			ordered := rng.IntN(2) == 0
			for step := 0; step < 200; step++ {
				nowMs += int64(rng.IntN(20))
				n := 1 + rng.IntN(100)
				if rng.IntN(10) == 0 {
					n = 1 + rng.IntN(5)
				}
				msgs := make([]transport.Message, n)
				for i := range msgs {
					tm := nowMs
					if !ordered {
						tm = nowMs - int64(rng.IntN(1000))
					}
					v := fmt.Sprintf("s%d-%d-%s", step, i, string(make([]byte, rng.IntN(40))))
					msgs[i] = transport.Message{Topic: "t", Value: []byte(v), Time: time.UnixMilli(tm)}
				}
				now := time.UnixMilli(nowMs)
				_, err := p.append(msgs, &cfg, now)
				require.NoError(t, err)
				for i := range msgs {
					m := &msgs[i]
					model = append(model, modelRec{off: base + int64(len(model)), val: string(m.Value), t: m.Time.UnixMilli(), added: nowMs, size: int64(recordSize(m))})
				}
				// The model's retention.
				var bytes int64
				for _, r := range model {
					bytes += r.size
				}
				cutoff := nowMs - cfg.retentionAge.Milliseconds()
				for len(model) > 1 && (len(model) > cfg.retentionRecords || bytes > cfg.retentionBytes || model[0].added < cutoff) {
					bytes -= model[0].size
					model = model[1:]
					base++
				}
				earliest, latest := p.offsets()
				require.Equal(t, base, earliest, "step %d earliest", step)
				require.Equal(t, base+int64(len(model)), latest, "step %d latest", step)
				require.Equal(t, bytes, p.bytes, "step %d bytes", step)
				// Reads at arbitrary offsets (below, inside, past the log).
				for k := 0; k < 8; k++ {
					from := base - 3 + int64(rng.IntN(len(model)+6))
					max := 1 + rng.IntN(150)
					got, next := p.read(nil, from, max)
					start := max64(from, base)
					want := []modelRec{}
					for _, r := range model {
						if r.off >= start && len(want) < max {
							want = append(want, r)
						}
					}
					require.Len(t, got, len(want), "step %d read from %d max %d", step, from, max)
					for i := range got {
						require.Equal(t, want[i].off, got[i].Offset)
						require.Equal(t, want[i].val, string(got[i].Value))
					}
					if len(want) > 0 {
						require.Equal(t, want[len(want)-1].off+1, next)
					}
				}
				// offsetForTime against a linear scan.
				for k := 0; k < 8; k++ {
					q := nowMs - int64(rng.IntN(1200))
					want := base + int64(len(model))
					for _, r := range model {
						if r.t >= q {
							want = r.off
							break
						}
					}
					require.Equal(t, want, p.offsetForTime(time.UnixMilli(q)), "step %d offsetForTime(%d) ordered=%v", step, q, ordered)
				}
			}
		})
	}
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// TestBreak7ReadersSeeNoChangeWhileChunksAreReused keeps records read by
// consumers, Fetch and Tail while a producer pushes a small-retention log
// through many chunk reuses, and checks later that no kept record changed.
func TestBreak7ReadersSeeNoChangeWhileChunksAreReused(t *testing.T) {
	b, err := New(WithRetention(70, 1<<30), WithPartitions(1))
	require.NoError(t, err)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, b.CreateTopic("c", 1))
	const total = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += 10 {
			batch := make([]transport.Message, 10)
			for j := range batch {
				batch[j] = transport.Message{Topic: "c", Value: []byte("v" + strconv.Itoa(i+j)), Headers: []transport.Header{{Key: "n", Value: strconv.Itoa(i + j)}}}
			}
			if i%20 == 0 {
				_, err := b.ProduceOwned(ctx, batch...)
				require.NoError(t, err)
			} else {
				_, err := b.Produce(ctx, batch...)
				require.NoError(t, err)
			}
		}
	}()
	check := func(kept []transport.Message) {
		for _, m := range kept {
			want := strconv.FormatInt(m.Offset, 10)
			require.Equal(t, "v"+want, string(m.Value), "offset %d", m.Offset)
			require.Len(t, m.Headers, 1)
			require.Equal(t, want, m.Headers[0].Value)
			require.Equal(t, "c", m.Topic)
		}
	}
	readers := 3
	kept := make([][]transport.Message, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var off int64
			for off < total-1 {
				var got []transport.Message
				var err error
				switch r {
				case 0:
					got, err = b.Fetch(ctx, "c", 0, off, 1+int(off%90))
				default:
					got, err = b.Fetch(ctx, "c", 0, off, 50)
				}
				require.NoError(t, err)
				if len(got) == 0 {
					continue
				}
				kept[r] = append(kept[r], got...)
				check(got)
				off = got[len(got)-1].Offset + 1
				if r == 2 {
					time.Sleep(time.Duration(off%3) * time.Microsecond) // fall behind retention at times
				}
			}
		}()
	}
	wg.Wait()
	for r := range kept {
		require.NotEmpty(t, kept[r])
		check(kept[r])
	}
}

// TestBreak7DurableRestoreAcrossChunks writes a durable partition past
// several chunks (with retention trimming it mid-chunk), reopens it and
// compares every record and the offsets with what was there before.
func TestBreak7DurableRestoreAcrossChunks(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 129, 700} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			b, err := NewDurable(dir, WithRetention(150, 1<<30), WithPartitions(1))
			require.NoError(t, err)
			for i := 0; i < n; {
				k := min(1+i%7, n-i)
				batch := make([]transport.Message, k)
				for j := range batch {
					batch[j] = transport.Message{Topic: "d", Value: []byte("v" + strconv.Itoa(i+j))}
				}
				_, err := b.Produce(ctx, batch...)
				require.NoError(t, err)
				i += k
			}
			e1, l1, err := b.Offsets("d", 0)
			require.NoError(t, err)
			before, err := b.Fetch(ctx, "d", 0, e1, 10000)
			require.NoError(t, err)
			require.NoError(t, b.Close())

			b2, err := NewDurable(dir, WithRetention(150, 1<<30), WithPartitions(1))
			require.NoError(t, err)
			defer b2.Close()
			e2, l2, err := b2.Offsets("d", 0)
			require.NoError(t, err)
			require.Equal(t, l1, l2)
			require.LessOrEqual(t, e2, e1+0) // restore may keep what the file still holds
			after, err := b2.Fetch(ctx, "d", 0, e1, 10000)
			require.NoError(t, err)
			require.Equal(t, len(before), len(after))
			for i := range before {
				require.Equal(t, before[i].Offset, after[i].Offset)
				require.Equal(t, string(before[i].Value), string(after[i].Value))
				require.Equal(t, "v"+strconv.FormatInt(after[i].Offset, 10), string(after[i].Value))
			}
			// And it goes on at the right offset.
			out, err := b2.Produce(ctx, transport.Message{Topic: "d", Value: []byte("next")})
			require.NoError(t, err)
			require.Equal(t, l1, out[0].Offset)
		})
	}
}

// TestBreak7HugePartition fills one partition with 200,000 records (3,125
// chunks, no retention) and reads at random offsets, across chunk
// boundaries, and by time.
func TestBreak7HugePartition(t *testing.T) {
	const n = 200_000
	clk := &fakeClock{}
	clk.ns.Store(time.UnixMilli(1_000_000).UnixNano())
	b, err := New(WithPartitions(1), WithRetention(1<<30, 1<<40))
	require.NoError(t, err)
	defer b.Close()
	b.now = clk.now
	ctx := context.Background()
	batch := make([]transport.Message, 1000)
	for i := 0; i < n; i += len(batch) {
		for j := range batch {
			batch[j] = transport.Message{Topic: "h", Value: []byte(strconv.Itoa(i + j))}
		}
		_, err := b.Produce(ctx, batch...)
		require.NoError(t, err)
		clk.advance(time.Millisecond) // each batch a millisecond later
	}
	e, l, err := b.Offsets("h", 0)
	require.NoError(t, err)
	require.Equal(t, int64(0), e)
	require.Equal(t, int64(n), l)
	rng := rand.New(rand.NewPCG(3, 3))
	for range 2000 {
		off := int64(rng.IntN(n))
		if rng.IntN(4) == 0 {
			off = off/chunkRecords*chunkRecords - 1 + int64(rng.IntN(3)) // around a boundary
			off = max(off, 0)
		}
		got, err := b.Fetch(ctx, "h", 0, off, 1+rng.IntN(200))
		require.NoError(t, err)
		require.NotEmpty(t, got)
		for k, m := range got {
			require.Equal(t, off+int64(k), m.Offset)
			require.Equal(t, strconv.FormatInt(m.Offset, 10), string(m.Value))
		}
	}
	for range 200 {
		batchNo := rng.IntN(n / 1000)
		o, err := b.OffsetForTime("h", 0, time.UnixMilli(1_000_000+int64(batchNo)))
		require.NoError(t, err)
		require.Equal(t, int64(batchNo*1000), o)
	}
}
