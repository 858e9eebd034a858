package memory

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak5DamagedThenProduceThenDamagedAgain: a damaged middle segment
// is set aside, new records are produced, and another segment is damaged
// before the next start: offsets keep increasing densely (never reused),
// the records set aside are never read again, and no *.log.damaged file is
// overwritten by a later one. (An attack that failed: kept as a guard.)
func TestBreak5DamagedThenProduceThenDamagedAgain(t *testing.T) {
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithSegmentBytes(200))
	for i := range 20 {
		produceN(t, b, "t", 0, i*3, 3)
	}
	require.NoError(t, b.Close())
	flip := func() {
		seg := segments(t, dir, "t", 0)
		data, err := os.ReadFile(seg[1])
		require.NoError(t, err)
		data[len(data)/2] ^= 0xff
		require.NoError(t, os.WriteFile(seg[1], data, 0o644))
	}
	flip()
	b2 := openDurable(t, dir, nil, WithSegmentBytes(200))
	_, l2, err := b2.Offsets("t", 0)
	require.NoError(t, err)
	out := produceN(t, b2, "t", 0, 60, 30)
	assert.Equal(t, l2, out[0].Offset)
	require.NoError(t, b2.Close())
	damaged1, _ := filepath.Glob(filepath.Join(dir, "logs", "t", "0", "*.damaged"))
	flip()
	b3 := openDurable(t, dir, nil, WithSegmentBytes(200))
	e3, l3, err := b3.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, l2+30, l3, "nothing after the damage lost, no offset reused")
	recs, err := b3.Fetch(context.Background(), "t", 0, 0, 1000)
	require.NoError(t, err)
	require.Len(t, recs, int(l3-e3))
	for i, r := range recs {
		assert.Equal(t, e3+int64(i), r.Offset)
	}
	damaged3, _ := filepath.Glob(filepath.Join(dir, "logs", "t", "0", "*.damaged"))
	assert.Subset(t, damaged3, damaged1)
	assert.Greater(t, len(damaged3), len(damaged1))
	assert.Equal(t, int64(l3), produceN(t, b3, "t", 0, 90, 1)[0].Offset)
}

// TestBreak5ExpiredGroupRecreatedKeepsNewCommit: a group expired by
// offsets retention (its deletion recorded in meta.log) and then used
// again: the new commit survives the restart. (An attack that failed
// sequentially; a concurrent variant is a suspected race, see the report.)
func TestBreak5ExpiredGroupRecreatedKeepsNewCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithOffsetsRetention(time.Minute))
	produceN(t, b, "t", 0, 0, 5)
	sub := transport.Subscription{Group: "g", Topics: []string{"t"}, Start: transport.StartEarliest}
	c, err := b.Subscribe(ctx, sub)
	require.NoError(t, err)
	require.NoError(t, c.(*Consumer).CommitOffsets(ctx, transport.Offset{Topic: "t", Offset: 2}))
	require.NoError(t, c.Close())
	later := time.Now().Add(time.Hour)
	b.now = func() time.Time { return later }
	c2, err := b.Subscribe(ctx, sub) // sweeps "g" first, then makes it anew
	require.NoError(t, err)
	require.NoError(t, c2.(*Consumer).CommitOffsets(ctx, transport.Offset{Topic: "t", Offset: 4}))
	require.NoError(t, b.Close())
	b2 := openDurable(t, dir, nil)
	off, err := b2.Committed("g", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(4), off)
}
