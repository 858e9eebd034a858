package disklog

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(tb testing.TB, path string, o Options) *Dir {
	tb.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	d, err := Open(path, o)
	require.NoError(tb, err)
	tb.Cleanup(func() { d.Close() })
	return d
}

func msgs(from, n int) []transport.Message {
	out := make([]transport.Message, n)
	for i := range out {
		out[i] = transport.Message{Key: fmt.Sprint("k", from+i), Value: []byte(fmt.Sprint("value-", from+i)),
			Time: time.UnixMilli(int64(1_700_000_000_000 + from + i))}
	}
	return out
}

func collect(tb testing.TB, d *Dir, topic string, part int32) (*Log, []transport.Message) {
	tb.Helper()
	var out []transport.Message
	l, err := d.Log(topic, part, func(b Batch) error {
		out = append(out, b.Records...)
		return nil
	})
	require.NoError(tb, err)
	return l, out
}

func TestBatchRoundTrip(t *testing.T) {
	in := []transport.Message{
		{Key: "", Value: nil, Time: time.UnixMilli(-5)},
		{Key: "k", Value: []byte{}, Time: time.UnixMilli(0), Headers: []transport.Header{{Key: "a", Value: ""}, {Key: "", Value: "b"}}},
		{Key: string(make([]byte, 300)), Value: bytes.Repeat([]byte{0xff}, 70_000), Time: time.UnixMilli(1 << 40)},
	}
	buf := appendBatch(nil, 42, 7, in)
	payload, n, err := readFrame(buf)
	require.NoError(t, err)
	assert.Equal(t, len(buf), n)
	b, err := decodeBatch(payload)
	require.NoError(t, err)
	assert.Equal(t, int64(42), b.Base)
	assert.Equal(t, int64(7), b.Appended.UnixMilli())
	for i := range in {
		in[i].Offset = 42 + int64(i)
	}
	require.Len(t, b.Records, 3)
	for i := range in {
		assert.Equal(t, in[i].Key, b.Records[i].Key)
		assert.Equal(t, in[i].Value, b.Records[i].Value)
		assert.Equal(t, in[i].Value == nil, b.Records[i].Value == nil)
		assert.Equal(t, in[i].Headers, b.Records[i].Headers)
		assert.Equal(t, in[i].Time.UnixMilli(), b.Records[i].Time.UnixMilli())
		assert.Equal(t, in[i].Offset, b.Records[i].Offset)
	}
	// Every single flipped byte is caught by the CRC or the frame checks.
	for i := range min(len(buf), 200) {
		bad := bytes.Clone(buf)
		bad[i] ^= 0x01
		p, _, err := readFrame(bad)
		if err == nil {
			_, err = decodeBatch(p)
		}
		assert.Error(t, err, "byte %d flipped", i)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendBatch(nil, 0, 0, msgs(0, 3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, _, err := readFrame(b); err == nil {
			_, _ = decodeBatch(p) // must not panic or allocate wildly
		}
		_, _ = decodeBatch(b)
	})
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	d := open(t, t.TempDir(), Options{Sync: SyncAlways})
	l, _ := collect(t, d, "t", 0)
	var mu sync.Mutex // the broker's partition lock
	const writers, each = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				mu.Lock()
				seq, err := l.Append(msgs(w*each+i, 1), time.Now())
				mu.Unlock()
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, l.Sync(seq))
				assert.GreaterOrEqual(t, l.file.synced.Load(), seq, "Sync returned before its bytes were synced")
			}
		}()
	}
	wg.Wait()
	fsyncs := l.file.fsyncs.Load()
	t.Logf("%d acknowledged appends from %d writers took %d fsyncs", writers*each, writers, fsyncs)
	assert.Less(t, fsyncs, int64(writers*each), "concurrent writers share fsyncs")
	assert.Equal(t, int64(writers*each), l.Next())
}

func TestLogRollsAndRecovers(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, Options{Sync: SyncInterval, Interval: time.Millisecond, SegmentBytes: 256})
	l, _ := collect(t, d, "t", 3)
	for i := range 30 {
		_, err := l.Append(msgs(i*2, 2), time.Now())
		require.NoError(t, err)
	}
	require.Greater(t, len(l.segs), 3)
	require.NoError(t, d.Close())
	d2 := open(t, dir, Options{Sync: SyncNever, SegmentBytes: 256})
	l2, got := collect(t, d2, "t", 3)
	require.Len(t, got, 60)
	for i, m := range got {
		assert.Equal(t, int64(i), m.Offset)
		assert.Equal(t, fmt.Sprint("value-", i), string(m.Value))
	}
	assert.Equal(t, int64(60), l2.Next())
	assert.Equal(t, int64(0), l2.Earliest())
}

func TestMissingMiddleSegmentIsReported(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, Options{Sync: SyncNever, SegmentBytes: 200})
	l, _ := collect(t, d, "t", 0)
	for i := range 20 {
		_, err := l.Append(msgs(i*2, 2), time.Now())
		require.NoError(t, err)
	}
	segs := append([]segment(nil), l.segs...)
	require.NoError(t, d.Close())
	require.NoError(t, os.Remove(segs[1].path))
	var logs bytes.Buffer
	d2 := open(t, dir, Options{Sync: SyncNever, SegmentBytes: 200, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	l2, got := collect(t, d2, "t", 0)
	assert.Contains(t, logs.String(), "hole")
	assert.Contains(t, logs.String(), fmt.Sprintf("missing_offsets=%d..%d", segs[1].base, segs[2].base-1))
	assert.Equal(t, segs[2].base, l2.Earliest())
	assert.Equal(t, int64(40), l2.Next())
	assert.Equal(t, segs[2].base, got[0].Offset)
}

func TestMetaSurvivesTornTailAndCompaction(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, Options{Sync: SyncNever})
	require.NoError(t, d.AddTopics([]TopicSpec{{"a", 3}, {"b", 1}}))
	// Enough commits to compact the log a few times.
	for i := range 30_000 {
		require.NoError(t, d.Commit("g", []Commit{{Topic: "a", Partition: int32(i % 3), Offset: int64(i)}}))
	}
	require.NoError(t, d.Commit("gone", []Commit{{Topic: "b", Offset: 1}}))
	require.NoError(t, d.DeleteGroup("gone"))
	require.NoError(t, d.Commit("h", []Commit{{Topic: "b", Offset: 9}}))
	st, err := os.Stat(filepath.Join(dir, "meta.log"))
	require.NoError(t, err)
	assert.Less(t, st.Size(), int64(2<<20), "compacted")
	require.NoError(t, d.Close())
	// A torn last entry is cut.
	f, err := os.OpenFile(filepath.Join(dir, "meta.log"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	torn := appendCommit(nil, "h", []Commit{{Topic: "b", Offset: 10}})
	_, err = f.Write(torn[:len(torn)-2])
	require.NoError(t, err)
	require.NoError(t, f.Close())
	var logs bytes.Buffer
	d2 := open(t, dir, Options{Sync: SyncAlways, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	assert.Contains(t, logs.String(), "cut the metadata log")
	assert.Equal(t, []TopicSpec{{"a", 3}, {"b", 1}}, d2.Topics())
	c := d2.Commits()
	assert.ElementsMatch(t, []Commit{{"a", 0, 29997}, {"a", 1, 29998}, {"a", 2, 29999}}, c["g"])
	assert.Equal(t, []Commit{{"b", 0, 9}}, c["h"])
	assert.NotContains(t, c, "gone")
}

func TestOpenValidates(t *testing.T) {
	for _, o := range []Options{{}, {Sync: SyncInterval}, {Sync: SyncAlways, SegmentBytes: -1}} {
		_, err := Open(t.TempDir(), o)
		assert.Error(t, err, "%+v", o)
	}
	_, err := Open("", Options{Sync: SyncAlways})
	assert.Error(t, err)
}

func TestIntervalPolicySyncsInTheBackground(t *testing.T) {
	d := open(t, t.TempDir(), Options{Sync: SyncInterval, Interval: 5 * time.Millisecond})
	l, _ := collect(t, d, "t", 0)
	seq, err := l.Append(msgs(0, 3), time.Now())
	require.NoError(t, err)
	require.NoError(t, l.Sync(seq), "Sync returns at once with SyncInterval")
	require.NoError(t, d.Commit("g", []Commit{{Topic: "t", Offset: 3}}))
	deadline := time.Now().Add(10 * time.Second)
	for l.file.dirty() || d.meta.file.dirty() {
		require.True(t, time.Now().Before(deadline), "the interval goroutine did not fsync within 10 s")
		time.Sleep(time.Millisecond)
	}
	assert.Positive(t, l.file.fsyncs.Load())
	assert.Positive(t, d.meta.file.fsyncs.Load())
}

func TestNeverPolicyDoesNotSync(t *testing.T) {
	d := open(t, t.TempDir(), Options{Sync: SyncNever})
	l, _ := collect(t, d, "t", 0)
	seq, err := l.Append(msgs(0, 3), time.Now())
	require.NoError(t, err)
	require.NoError(t, l.Sync(seq))
	assert.Zero(t, l.file.fsyncs.Load())
	assert.True(t, l.file.dirty())
}
