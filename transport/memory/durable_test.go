package memory

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// logBuffer is a goroutine-safe log sink for a durable broker's reports.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openDurable opens a durable broker on dir, logging into logs (when not
// nil), and closes it at the end of the test.
func openDurable(tb testing.TB, dir string, logs *logBuffer, opts ...Option) *Broker {
	tb.Helper()
	if logs == nil {
		logs = &logBuffer{}
	}
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)
	b, err := NewDurable(dir, opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { b.Close() })
	return b
}

func produceN(tb testing.TB, b *Broker, topic string, part int32, from, n int) []transport.Message {
	tb.Helper()
	msgs := make([]transport.Message, n)
	for i := range msgs {
		msgs[i] = transport.Message{Topic: topic, Partition: part, ManualPartition: true,
			Key: fmt.Sprint("k", from+i), Value: []byte(fmt.Sprint("v", from+i))}
	}
	out, err := b.Produce(context.Background(), msgs...)
	require.NoError(tb, err)
	return out
}

// segments lists the segment files of a partition.
func segments(tb testing.TB, dir, topic string, part int) []string {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "logs", topic, fmt.Sprint(part), "*.log"))
	require.NoError(tb, err)
	return names
}

func TestDurableRestartKeepsRecordsTopicsAndOffsets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithPartitions(2))
	require.NoError(t, b.CreateTopic("orders", 3))
	in := []transport.Message{
		{Topic: "orders", Key: "a", Value: []byte("one"), Headers: []transport.Header{{Key: "h", Value: "x"}, {Key: "e", Value: ""}},
			Time: time.UnixMilli(1_700_000_000_123)},
		{Topic: "orders", Key: "", Value: nil},
		{Topic: "orders", Key: "b", Value: []byte{}},
		{Topic: "auto", Value: []byte("auto-created")},
	}
	wrote, err := b.Produce(ctx, in...)
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic("jobs", 1))
	produceN(t, b, "jobs", 0, 0, 3)
	c, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	got := pollUntil(t, c, 3)
	require.NoError(t, c.Commit(ctx, got[:2]...))
	require.NoError(t, c.Close())
	require.NoError(t, b.Close())

	b2 := openDurable(t, dir, nil, WithPartitions(2))
	assert.Equal(t, map[string]int32{"orders": 3, "auto": 2, "jobs": 1}, b2.Topics())
	for _, w := range wrote {
		recs, err := b2.Fetch(ctx, w.Topic, w.Partition, w.Offset, 1)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		assert.Equal(t, w, recs[0], "record read back as written")
		assert.Equal(t, w.Value == nil, recs[0].Value == nil, "nil and empty values stay apart")
	}
	off, err := b2.Committed("g", "jobs", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(2), off, "the committed offset survives")
	// Offsets continue densely.
	for _, w := range wrote[:1] {
		_, latest, err := b2.Offsets(w.Topic, w.Partition)
		require.NoError(t, err)
		out := produceN(t, b2, w.Topic, w.Partition, 0, 2)
		assert.Equal(t, latest, out[0].Offset)
		assert.Equal(t, latest+1, out[1].Offset)
	}
	// The group resumes from its committed offsets: the uncommitted record
	// comes again, the committed ones do not.
	c2, err := b2.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"}, Start: transport.StartLatest})
	require.NoError(t, err)
	defer c2.Close()
	later := produceN(t, b2, "jobs", 0, 3, 1)
	again := pollUntil(t, c2, 2)
	assert.Equal(t, []transport.Message{got[2], later[0]}, again)
}

// pollUntil polls c until it has n records (bounded).
func pollUntil(tb testing.TB, c transport.Consumer, n int) []transport.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []transport.Message
	for len(out) < n {
		msgs, err := c.Poll(ctx)
		require.NoError(tb, err, "after %d of %d records", len(out), n)
		out = append(out, msgs...)
	}
	return out
}

func TestDurableTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	b := openDurable(t, dir, nil)
	wrote := produceN(t, b, "t", 0, 0, 5)
	produceN(t, b, "t", 0, 5, 5)
	require.NoError(t, b.Close())
	seg := segments(t, dir, "t", 0)
	require.Len(t, seg, 1)
	full, err := os.ReadFile(seg[0])
	require.NoError(t, err)
	// Cut the second batch in the middle, as a crash during its write would.
	first := int64(len(full)) / 2
	for _, cut := range []int64{int64(len(full)) - 3, first + 5} {
		require.NoError(t, os.Truncate(seg[0], cut))
	}
	logs := &logBuffer{}
	b2 := openDurable(t, dir, logs)
	assert.Contains(t, logs.String(), "torn tail")
	earliest, latest, err := b2.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(0), earliest)
	assert.Less(t, latest, int64(10), "the torn batch is gone")
	recs, err := b2.Fetch(context.Background(), "t", 0, 0, 100)
	require.NoError(t, err)
	require.Equal(t, int(latest), len(recs))
	assert.Equal(t, wrote[:len(recs)], recs[:min(len(recs), 5)])
	// The next record takes the next offset, and survives another restart.
	out := produceN(t, b2, "t", 0, 100, 1)
	assert.Equal(t, latest, out[0].Offset)
	require.NoError(t, b2.Close())
	b3 := openDurable(t, dir, nil)
	_, latest3, err := b3.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, latest+1, latest3)
}

func TestDurableDamagedMiddleSegmentIsReported(t *testing.T) {
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithSegmentBytes(200))
	for i := range 20 {
		produceN(t, b, "t", 0, i*3, 3)
	}
	require.NoError(t, b.Close())
	seg := segments(t, dir, "t", 0)
	require.GreaterOrEqual(t, len(seg), 4)
	// Flip a byte inside the second segment.
	data, err := os.ReadFile(seg[1])
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(seg[1], data, 0o644))
	third := strings.TrimSuffix(filepath.Base(seg[2]), ".log")

	logs := &logBuffer{}
	b2 := openDurable(t, dir, logs, WithSegmentBytes(200))
	assert.Contains(t, logs.String(), "damaged segment")
	assert.Contains(t, logs.String(), "damaged_offsets=")
	earliest, latest, err := b2.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(60), latest, "everything after the damage is kept")
	assert.Equal(t, fmt.Sprint(earliest), strings.TrimLeft(third, "0"), "the log continues at the next segment")
	recs, err := b2.Fetch(context.Background(), "t", 0, 0, 100)
	require.NoError(t, err)
	assert.Len(t, recs, int(latest-earliest))
	assert.Equal(t, fmt.Sprint("v", earliest), string(recs[0].Value))
	damaged, _ := filepath.Glob(filepath.Join(dir, "logs", "t", "0", "*.damaged"))
	assert.Len(t, damaged, 2, "the damaged segment and the one before it are set aside, not deleted")
}

func TestDurableDirInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	b := openDurable(t, dir, nil)
	_, err := NewDurable(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in use by another process")
	assert.Contains(t, err.Error(), fmt.Sprint(os.Getpid()))
	require.NoError(t, b.Close())
	b2, err := NewDurable(dir)
	require.NoError(t, err, "the lock is released at Close")
	require.NoError(t, b2.Close())
}

func TestDurableRetentionDeletesWholeSegments(t *testing.T) {
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithSegmentBytes(300), WithRetention(0, 400))
	for i := range 50 {
		produceN(t, b, "t", 0, i*4, 4)
	}
	earliest, latest, err := b.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(200), latest)
	seg := segments(t, dir, "t", 0)
	assert.LessOrEqual(t, len(seg), 4, "old segments deleted: %v", seg)
	first := strings.TrimLeft(strings.TrimSuffix(filepath.Base(seg[0]), ".log"), "0")
	assert.LessOrEqual(t, first, fmt.Sprint(earliest))
	require.NoError(t, b.Close())
	b2 := openDurable(t, dir, nil, WithSegmentBytes(300), WithRetention(0, 400))
	e2, l2, err := b2.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, earliest, e2, "the same records are retained after a restart")
	assert.Equal(t, latest, l2)
}

func TestDurableRetentionByAgeDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithSegmentBytes(100))
	past := time.Now().Add(-2 * time.Hour)
	b.now = func() time.Time { return past }
	for i := range 10 {
		produceN(t, b, "t", 0, i*2, 2)
	}
	require.NoError(t, b.Close())
	require.Greater(t, len(segments(t, dir, "t", 0)), 2)
	b2 := openDurable(t, dir, nil, WithSegmentBytes(100), WithRetentionAge(time.Hour))
	earliest, latest, err := b2.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(20), latest)
	assert.Equal(t, int64(19), earliest, "records older than the age are dropped (the newest stays)")
	produceN(t, b2, "t", 0, 100, 1)
	assert.Len(t, segments(t, dir, "t", 0), 1, "segments of expired records are deleted")
}

// TestDurableFailedWriteIsNotAcknowledged makes the next segment file
// /dev/full, so its writes fail with ENOSPC as on a full disk.
func TestDurableFailedWriteIsNotAcknowledged(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system; kafka-rest's TestFullDiskAnswers507 covers the same with RLIMIT_FSIZE")
	}
	ctx := context.Background()
	dir := t.TempDir()
	b := openDurable(t, dir, nil, WithSegmentBytes(100))
	wrote := produceN(t, b, "t", 0, 0, 10) // over 100 bytes: the next append rolls
	require.NoError(t, os.Symlink("/dev/full", filepath.Join(dir, "logs", "t", "0", fmt.Sprintf("%020d.log", 10))))
	_, err := b.Produce(ctx, transport.Message{Topic: "t", Value: []byte("lost")})
	require.ErrorIs(t, err, ErrStorage)
	assert.Contains(t, err.Error(), "no space left on device")
	_, latest, err := b.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(10), latest, "the failed record is not stored")
	// A consumer sees only what was written.
	recs, err := b.Fetch(ctx, "t", 0, 0, 100)
	require.NoError(t, err)
	assert.Equal(t, wrote, recs)
	require.NoError(t, b.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, "logs", "t", "0", fmt.Sprintf("%020d.log", 10))))
	b2 := openDurable(t, dir, nil, WithSegmentBytes(100))
	out := produceN(t, b2, "t", 0, 10, 1)
	assert.Equal(t, int64(10), out[0].Offset)
}

func TestDurableOptionsAreValidated(t *testing.T) {
	_, err := New(WithFsync(FsyncNever()))
	require.ErrorIs(t, err, transport.ErrInvalid, "New keeps memory only")
	_, err = NewDurable(t.TempDir(), WithFsync(FsyncEvery(0)))
	require.ErrorIs(t, err, transport.ErrInvalid)
	_, err = NewDurable(t.TempDir(), WithSegmentBytes(0))
	require.ErrorIs(t, err, transport.ErrInvalid)
	for in, want := range map[string]string{"always": "always", "never": "never", "interval=100ms": "interval=100ms"} {
		p, err := ParseFsyncPolicy(in)
		require.NoError(t, err)
		assert.Equal(t, want, p.String())
	}
	for _, bad := range []string{"", "sometimes", "interval=", "interval=-1s", "interval=0s", "interval=abc"} {
		_, err := ParseFsyncPolicy(bad)
		require.ErrorIs(t, err, transport.ErrInvalid, bad)
	}
	f, err := os.CreateTemp(t.TempDir(), "file")
	require.NoError(t, err)
	f.Close()
	_, err = NewDurable(f.Name())
	require.Error(t, err, "a data dir that is a file")
}

func TestDurableEveryPolicyKeepsRecordsAcrossClose(t *testing.T) {
	for _, p := range []FsyncPolicy{FsyncAlways(), FsyncEvery(5 * time.Millisecond), FsyncNever()} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			b := openDurable(t, dir, nil, WithFsync(p))
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 25 {
						produceN(t, b, "t", 0, w*1000+i*4, 4)
					}
				}()
			}
			wg.Wait()
			require.NoError(t, b.Close())
			b2 := openDurable(t, dir, nil, WithFsync(p))
			_, latest, err := b2.Offsets("t", 0)
			require.NoError(t, err)
			assert.Equal(t, int64(400), latest)
		})
	}
}

// TestDurableCloseDuringProduce closes the broker while producers and a
// committing member run: no race, and every produce and commit that
// returned nil is there after reopening.
func TestDurableCloseDuringProduce(t *testing.T) {
	for _, p := range []FsyncPolicy{FsyncAlways(), FsyncEvery(time.Millisecond), FsyncNever()} {
		t.Run(p.String(), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			b := openDurable(t, dir, nil, WithFsync(p), WithSegmentBytes(4096), WithPartitions(3))
			var (
				mu    sync.Mutex
				acked []transport.Message
				wg    sync.WaitGroup
			)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						out, err := b.Produce(ctx, transport.Message{Topic: "t", Key: fmt.Sprint(w, "-", i), Value: []byte("v")},
							transport.Message{Topic: "t", Key: fmt.Sprint(w, "+", i), Value: []byte("w")})
						if err != nil {
							require.ErrorIs(t, err, transport.ErrClosed)
							return
						}
						mu.Lock()
						acked = append(acked, out...)
						mu.Unlock()
					}
				}()
			}
			c, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"t"}, Start: transport.StartEarliest})
			require.NoError(t, err)
			var lastCommitted []transport.Message
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					msgs, err := c.Poll(ctx)
					if err != nil {
						return
					}
					if err := c.Commit(ctx, msgs...); err != nil {
						return
					}
					lastCommitted = msgs
				}
			}()
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 2000 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			require.NoError(t, b.Close())
			wg.Wait()

			b2 := openDurable(t, dir, nil, WithFsync(p), WithSegmentBytes(4096), WithPartitions(3))
			for _, m := range acked {
				recs, err := b2.Fetch(ctx, m.Topic, m.Partition, m.Offset, 1)
				require.NoError(t, err)
				require.Len(t, recs, 1)
				require.Equal(t, m, recs[0])
			}
			for _, m := range lastCommitted {
				off, err := b2.Committed("g", m.Topic, m.Partition)
				require.NoError(t, err)
				assert.GreaterOrEqual(t, off, m.Offset+1, "a commit that returned nil is kept")
			}
		})
	}
}
