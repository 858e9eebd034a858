package memory

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/disklog"
	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak5RestartMemoryIsBoundedByRetention: small records, retention by
// record count (kafka-rest keeps 100,000 per partition by default). On
// disk a partition keeps up to two 16 MiB segments whatever the count, so
// millions of tiny records; in memory, the broker holds only the retained
// ones. Bug: recovery decoded EVERY batch of every segment of a partition
// into transport.Messages (128 bytes each, ~14x the ~9 bytes a tiny record
// takes on disk) and held them all in a pending list before handing the
// first one to the broker, which then trimmed all but the retained few. A
// restart needed hundreds of MiB per partition (with partitions restored
// concurrently, GBs) for a server that ran in a few MiB: the restart
// OOMs. Recovery must check the segments first and decode a batch only
// when it hands it over.
func TestBreak5RestartMemoryIsBoundedByRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2M records")
	}
	dir := t.TempDir()
	d, err := disklog.Open(dir, disklog.Options{Sync: disklog.SyncNever, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, d.AddTopics([]disklog.TopicSpec{{Name: "tiny", Partitions: 1}}))
	l, err := d.Log("tiny", 0, func(disklog.Batch) error { return nil })
	require.NoError(t, err)
	const batches, per = 40, 50_000
	batch := make([]transport.Message, per)
	now := time.Now()
	for i := range batch {
		batch[i].Time = now
	}
	for range batches {
		_, err := l.Append(batch, now)
		require.NoError(t, err)
	}
	require.NoError(t, d.Close())
	batch = nil

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	start := time.Now()
	b, err := NewDurable(dir, WithLogger(quietLogger()), WithRetention(1000, 1<<30))
	took := time.Since(start)
	close(stop)
	<-sampled
	require.NoError(t, err)
	defer b.Close()
	e, latest, err := b.Offsets("tiny", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(batches*per), latest)
	assert.Equal(t, int64(batches*per-1000), e)
	grew := int64(peak.Load()) - int64(base)
	t.Logf("restart of %d tiny records retaining 1000: peak heap +%d MiB, took %v", batches*per, grew>>20, took.Round(time.Millisecond))
	// The files are ~18 MiB and stay referenced while read; decoded, the
	// 2M records are 256 MiB.
	assert.Less(t, grew, int64(96<<20), "restart memory grows with the records on disk decoded, not with what is retained")
}
