package memory

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// produceNewTopics produces one record to each of n new topics named
// prefix-i, in one call.
func produceNewTopics(ctx context.Context, b *Broker, prefix string, n int, extra ...transport.Message) error {
	msgs := make([]transport.Message, 0, n+len(extra))
	for i := range n {
		msgs = append(msgs, transport.Message{Topic: fmt.Sprintf("%s-%d", prefix, i), Value: []byte("v")})
	}
	_, err := b.Produce(ctx, append(msgs, extra...)...)
	return err
}

// TestTopicCreationIsConstantCost: with 10,000 topics, creating 200 more
// allocates about what creating them alone does (it used to copy the whole
// topic map per new topic: quadratic; issue 14 finding 3).
func TestTopicCreationIsConstantCost(t *testing.T) {
	b := newBroker(t, WithMaxTopics(20_000, 20_000))
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, produceNewTopics(ctx, b, "base", 10_000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range 200 {
		require.NoError(t, b.CreateTopic(fmt.Sprintf("more-%d", i), 1))
	}
	runtime.ReadMemStats(&after)
	perTopic := (after.TotalAlloc - before.TotalAlloc) / 200
	assert.Less(t, perTopic, uint64(16<<10), "bytes allocated per topic created among 10,000")
}

// TestRejectedProduceCreatesNoTopics: a produce refused for any record
// creates none of its topics.
func TestRejectedProduceCreatesNoTopics(t *testing.T) {
	b := newBroker(t, WithMaxMessageBytes(10))
	defer b.Close()
	err := produceNewTopics(context.Background(), b, "new", 100, transport.Message{Topic: "last", Value: make([]byte, 11)})
	require.ErrorIs(t, err, transport.ErrMessageTooLarge)
	assert.Empty(t, b.Topics())
	err = produceNewTopics(context.Background(), b, "new", 100, transport.Message{Topic: "p", Partition: 5, ManualPartition: true})
	require.ErrorIs(t, err, transport.ErrInvalid)
	assert.Empty(t, b.Topics())
}

// TestTopicAndPartitionCaps: topics and partitions past the broker's caps
// are refused, all or none.
func TestTopicAndPartitionCaps(t *testing.T) {
	b := newBroker(t, WithMaxTopics(5, 8), WithPartitions(2))
	defer b.Close()
	ctx := context.Background()
	err := produceNewTopics(ctx, b, "a", 6)
	require.ErrorIs(t, err, transport.ErrInvalid)
	assert.Contains(t, err.Error(), "limit")
	assert.Empty(t, b.Topics())
	err = produceNewTopics(ctx, b, "a", 5)
	require.ErrorIs(t, err, transport.ErrInvalid, "10 partitions over the cap of 8")
	assert.Empty(t, b.Topics())
	require.NoError(t, produceNewTopics(ctx, b, "a", 4))
	require.ErrorIs(t, b.CreateTopic("b", 1), transport.ErrInvalid)
	assert.Len(t, b.Topics(), 4)
}

// TestProduceCreatesNoTopicsAfterCancel: a produce whose context has ended
// creates nothing.
func TestProduceCreatesNoTopicsAfterCancel(t *testing.T) {
	b := newBroker(t)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, produceNewTopics(ctx, b, "c", 10), context.Canceled)
	assert.Empty(t, b.Topics())
}

// TestEmptyGroupsExpireAfterOffsetsRetention: a group with committed
// offsets and no member is deleted after the offsets retention (issue 14
// finding 5: groups used to stay until Close).
func TestEmptyGroupsExpireAfterOffsetsRetention(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1), WithOffsetsRetention(time.Hour))
	ctx := context.Background()
	c := f.join(t, sub("kept", "a", transport.StartEarliest, "t"))
	require.NoError(t, c.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 0}))
	require.NoError(t, c.Close())
	require.Len(t, f.Groups(), 1, "kept with its offsets")

	f.clock.advance(time.Hour - time.Second)
	require.Len(t, f.Groups(), 1, "not yet")
	f.clock.advance(time.Minute)
	assert.Empty(t, f.Groups(), "deleted after the retention")
	off, err := f.Committed("kept", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), off)

	// A group that got a member back in time is kept.
	c = f.join(t, sub("back", "a", transport.StartEarliest, "t"))
	require.NoError(t, c.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 0}))
	require.NoError(t, c.Close())
	f.clock.advance(30 * time.Minute)
	c = f.join(t, sub("back", "a", transport.StartEarliest, "t"))
	f.clock.advance(2 * time.Hour)
	assert.Len(t, f.Groups(), 1)
	require.NoError(t, c.Close())
}

// TestRetentionFreesMemory: records that retention drops release their
// bytes even when a record of their produce batch is kept (issue 14
// finding 2: a batch's values shared one buffer, which one kept record
// pinned whole).
func TestRetentionFreesMemory(t *testing.T) {
	b := newBroker(t, WithRetention(0, 1<<20))
	defer b.Close()
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	batch := make([]transport.Message, 11)
	for i := range 10 {
		batch[i] = transport.Message{Topic: "junk", Value: make([]byte, 64<<10)}
	}
	batch[10] = transport.Message{Topic: "keep", Value: []byte("k")}
	for range 40 { // 40 × 640 KiB of junk; retention keeps 1 MiB of it, and every "k"
		_, err := b.Produce(ctx, batch...)
		require.NoError(t, err)
	}
	grown := int64(heap()) - int64(before)
	assert.Less(t, grown, int64(6<<20), "heap growth in bytes after 26 MiB produced, 1 MiB retained")
	runtime.KeepAlive(batch)
}

// TestRetentionByAge: at an append, records older than the retention age
// are dropped (the newest kept).
func TestRetentionByAge(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1), WithRetentionAge(time.Hour))
	f.produceTo(t, "t", 0, "old", 3)
	f.clock.advance(30 * time.Minute)
	f.produceTo(t, "t", 0, "mid", 1)
	earliest, latest, err := f.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 4}, [2]int64{earliest, latest})
	f.clock.advance(31 * time.Minute)
	f.produceTo(t, "t", 0, "new", 1)
	earliest, latest, err = f.Offsets("t", 0)
	require.NoError(t, err)
	assert.Equal(t, [2]int64{3, 5}, [2]int64{earliest, latest}, "the three records over an hour old went")
}
