package memory

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

func TestFetch(t *testing.T) {
	f := newFixture(t, WithTopic("f", 2), WithMaxPollRecords(4))
	f.produceTo(t, "f", 1, "r", 10)
	ctx := context.Background()

	got, err := f.Fetch(ctx, "f", 1, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, seq(0, 4), offsetsOf(got), "max <= 0 means MaxPollRecords")

	got, err = f.Fetch(ctx, "f", 1, 3, 100)
	require.NoError(t, err)
	assert.Equal(t, seq(3, 10), offsetsOf(got), "a larger max is allowed")
	assert.Equal(t, []string{"r-3", "r-4", "r-5", "r-6", "r-7", "r-8", "r-9"}, values(got))

	got, err = f.Fetch(ctx, "f", 1, -5, 2)
	require.NoError(t, err)
	assert.Equal(t, seq(0, 2), offsetsOf(got), "below earliest starts at earliest")

	// At or beyond latest: wait for a record.
	for _, tc := range []struct {
		name          string
		offset        int64
		produce, want int
	}{{"at latest", 10, 1, 1}, {"beyond latest", 12, 3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan []transport.Message, 1)
			go func() {
				msgs, err := f.Fetch(ctx, "f", 1, tc.offset, 0)
				assert.NoError(t, err)
				done <- msgs
			}()
			_, before, err := f.Offsets("f", 1)
			require.NoError(t, err)
			// Records before tc.offset do not satisfy the fetch.
			f.produceTo(t, "f", 1, "late", int(tc.offset-before))
			f.produceTo(t, "f", 1, "x", tc.produce)
			select {
			case msgs := <-done:
				require.Len(t, msgs, tc.want)
				assert.Equal(t, tc.offset, msgs[0].Offset)
				assert.Equal(t, "x-0", string(msgs[0].Value))
			case <-time.After(wait):
				t.Fatal("Fetch did not return after a produce")
			}
		})
	}
	// The waiters unregistered themselves.
	p := f.lookup("f").parts[1]
	p.mu.Lock()
	assert.Empty(t, p.watchers)
	p.mu.Unlock()
}

func TestFetchErrors(t *testing.T) {
	f := newFixture(t, WithTopic("f", 2))
	ctx := context.Background()
	_, err := f.Fetch(ctx, "nope", 0, 0, 0)
	require.ErrorIs(t, err, transport.ErrUnknownTopic, "Fetch never auto-creates")
	assert.EqualError(t, err, `memory: fetch "nope": transport: unknown topic`)
	assert.NotContains(t, f.Topics(), "nope")
	_, err = f.Fetch(ctx, "f", 2, 0, 0)
	require.ErrorIs(t, err, transport.ErrInvalid)
	assert.EqualError(t, err, `memory: fetch "f": partition 2 does not exist (the topic has 2): transport: invalid argument`)
	_, err = f.Fetch(ctx, "f", -1, 0, 0)
	require.ErrorIs(t, err, transport.ErrInvalid)
	_, err = f.Fetch(ctx, "", 0, 0, 0)
	require.ErrorIs(t, err, transport.ErrInvalid)

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := f.Fetch(cctx, "f", 0, 0, 0)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(wait):
		t.Fatal("Fetch did not return after cancel")
	}
	_, err = f.Fetch(cctx, "f", 0, 0, 0)
	require.ErrorIs(t, err, context.Canceled)
}

func TestOffsets(t *testing.T) {
	f := newFixture(t, WithTopic("o", 2))
	earliest, latest, err := f.Offsets("o", 0)
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 0}, [2]int64{earliest, latest})
	f.produceTo(t, "o", 0, "r", 5)
	earliest, latest, err = f.Offsets("o", 0)
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 5}, [2]int64{earliest, latest})

	_, _, err = f.Offsets("nope", 0)
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, _, err = f.Offsets("o", 5)
	require.ErrorIs(t, err, transport.ErrInvalid)
}

func TestOffsetForTime(t *testing.T) {
	f := newFixture(t, WithTopic("ts", 2))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	msg := func(p int32, ms int) transport.Message {
		return transport.Message{Topic: "ts", Partition: p, ManualPartition: true, Time: at(ms)}
	}
	// Partition 0: times in order (binary search). Partition 1: out of
	// order (a caller-given Time may go backwards).
	f.produce(t, msg(0, 10), msg(0, 20), msg(0, 20), msg(0, 30))
	f.produce(t, msg(1, 30), msg(1, 10), msg(1, 20), msg(1, 40))
	tests := []struct {
		p    int32
		at   time.Time
		want int64
	}{
		{0, at(0), 0}, {0, at(10), 0}, {0, at(11), 1}, {0, at(20), 1}, {0, at(21), 3}, {0, at(30), 3}, {0, at(31), 4},
		{1, at(0), 0}, {1, at(30), 0}, {1, at(31), 3}, {1, at(40), 3}, {1, at(41), 4},
		{0, at(20).Add(500 * time.Microsecond), 3}, // sub-millisecond t: stored times are whole ms
	}
	for _, tt := range tests {
		got, err := f.OffsetForTime("ts", tt.p, tt.at)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "partition %d at %v", tt.p, tt.at.Sub(base))
	}
	_, err := f.OffsetForTime("nope", 0, base)
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, err = f.OffsetForTime("ts", 2, base)
	require.ErrorIs(t, err, transport.ErrInvalid)
}

func TestRetention(t *testing.T) {
	t.Run("by count", func(t *testing.T) {
		f := newFixture(t, WithRetention(5, 0))
		f.produceTo(t, "r", 0, "v", 8)
		earliest, latest, err := f.Offsets("r", 0)
		require.NoError(t, err)
		assert.Equal(t, [2]int64{3, 8}, [2]int64{earliest, latest})
		got, err := f.Fetch(context.Background(), "r", 0, 0, 0)
		require.NoError(t, err)
		assert.Equal(t, seq(3, 8), offsetsOf(got), "Fetch below earliest starts at earliest")
		assert.Equal(t, []string{"v-3", "v-4", "v-5", "v-6", "v-7"}, values(got))
	})
	t.Run("by bytes", func(t *testing.T) {
		// Each record is key 1 + value 9 = 10 bytes; 35 bytes keep 3.
		f := newFixture(t, WithRetention(0, 35))
		for range 6 {
			f.produce(t, transport.Message{Topic: "r", Key: "k", Value: []byte("123456789")})
		}
		earliest, latest, err := f.Offsets("r", 0)
		require.NoError(t, err)
		assert.Equal(t, [2]int64{3, 6}, [2]int64{earliest, latest})
		// A record over the byte limit by itself is still kept.
		f.produce(t, transport.Message{Topic: "r", Value: make([]byte, 100)})
		earliest, latest, err = f.Offsets("r", 0)
		require.NoError(t, err)
		assert.Equal(t, [2]int64{6, 7}, [2]int64{earliest, latest})
		got, err := f.Fetch(context.Background(), "r", 0, 0, 0)
		require.NoError(t, err)
		assert.Equal(t, []int64{6}, offsetsOf(got))
	})
	t.Run("long run reuses its chunks", func(t *testing.T) {
		f := newFixture(t, WithRetention(10, 0))
		var spares []*chunk
		for i := range 1000 {
			f.produce(t, transport.Message{Topic: "r", Value: []byte{byte(i)}})
			p := f.lookup("r").parts[0]
			p.mu.Lock()
			if p.spare != nil && !slices.Contains(spares, p.spare) {
				spares = append(spares, p.spare)
			}
			p.mu.Unlock()
		}
		p := f.lookup("r").parts[0]
		p.mu.Lock()
		assert.LessOrEqual(t, len(p.chunks), 2, "no more chunks than the retained records need")
		assert.Len(t, spares, 2, "1,000 records through two chunks: each emptied chunk is the next one")
		assert.Equal(t, int64(990), p.base)
		assert.Equal(t, 10, p.count)
		p.mu.Unlock()
		for from := int64(985); from < 1000; from++ {
			got, err := f.Fetch(context.Background(), "r", 0, from, 0)
			require.NoError(t, err)
			require.Equal(t, seq(max(from, 990), 1000), offsetsOf(got))
			for _, m := range got {
				require.Equal(t, []byte{byte(m.Offset)}, m.Value)
			}
		}
		// Batches larger than the ring grow it in order.
		f.produceTo(t, "r", 0, "big", 40)
		got, err := f.Fetch(context.Background(), "r", 0, 0, 0)
		require.NoError(t, err)
		assert.Equal(t, []string{"big-30", "big-31", "big-32", "big-33", "big-34", "big-35", "big-36", "big-37", "big-38", "big-39"}, values(got))
		assert.Equal(t, seq(1030, 1040), offsetsOf(got))
	})
	t.Run("readers skip to earliest", func(t *testing.T) {
		f := newFixture(t, WithRetention(3, 0))
		ctx := context.Background()
		tail, err := f.Tail(ctx, "r")
		require.NoError(t, err)
		defer tail.Close()
		m := f.join(t, transport.Subscription{Group: "g", Topics: []string{"r"}, Start: transport.StartEarliest})
		f.produceTo(t, "r", 0, "v", 7)
		assert.Equal(t, seq(4, 7), offsetsOf(pollN(t, tail, 3)))
		assert.Equal(t, seq(4, 7), offsetsOf(pollN(t, m, 3)))
	})
}

// TestPollAndFetchCappedInBytes: Poll stops at the byte caps (at least one
// record) and what it leaves comes next; Fetch applies the partition cap.
func TestPollAndFetchCappedInBytes(t *testing.T) {
	b := newBroker(t, WithTopic("t", 1), WithFetchMaxBytes(2500, 2000))
	defer b.Close()
	ctx := context.Background()
	var msgs []transport.Message
	for range 10 {
		msgs = append(msgs, transport.Message{Topic: "t", Value: make([]byte, 1000)})
	}
	msgs = append(msgs, transport.Message{Topic: "t", Value: make([]byte, 5000)})
	_, err := b.Produce(ctx, msgs...)
	require.NoError(t, err)

	got, err := b.Fetch(ctx, "t", 0, 0, 0)
	require.NoError(t, err)
	assert.Len(t, got, 2)
	got, err = b.Fetch(ctx, "t", 0, 10, 0)
	require.NoError(t, err)
	assert.Len(t, got, 1, "a record over the cap still comes alone")

	c, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"t"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer c.Close()
	var offs []int64
	for len(offs) < 11 {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := c.Poll(pctx)
		cancel()
		require.NoError(t, err)
		require.NotEmpty(t, got)
		assert.LessOrEqual(t, len(got), 2)
		for _, m := range got {
			offs = append(offs, m.Offset)
		}
	}
	assert.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, offs)
}
