package memory

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestSubscribeCommittedRefusesWithoutATrace: a join that would own a
// partition without a committed offset is refused (the REST server's
// Kafka-Auto-Offset-Reset: none) before it changes anything: the other
// members keep their partitions, no start is fixed for the partition, and
// a group made by the call goes again. With every partition committed it
// joins as Subscribe.
func TestSubscribeCommittedRefusesWithoutATrace(t *testing.T) {
	f := newFixture(t, WithAutoCreate(false), WithTopic("t", 2))
	ctx := context.Background()
	var revoked atomic.Int32
	s := sub("g", "a", transport.StartLatest, "t")
	s.OnRevoked = func([]transport.TopicPartition) { revoked.Add(1) }
	a, err := f.Subscribe(ctx, s)
	require.NoError(t, err)
	defer a.Close()
	require.NoError(t, a.(*Consumer).CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 0}))

	// b would own partition 1 (range: a gets 0, b gets 1): uncommitted.
	c, missing, err := f.SubscribeCommitted(ctx, sub("g", "b", transport.StartLatest, "t"))
	require.NoError(t, err)
	assert.Nil(t, c)
	assert.Equal(t, []transport.TopicPartition{{Topic: "t", Partition: 1}}, missing)
	assert.Equal(t, map[string][]int32{"t": {0, 1}}, a.(*Consumer).Assignment(), "a keeps both partitions")
	assert.Zero(t, revoked.Load(), "a saw no rebalance")

	// A group the call made goes again.
	c, missing, err = f.SubscribeCommitted(ctx, sub("nobody", "b", transport.StartLatest, "t"))
	require.NoError(t, err)
	assert.Nil(t, c)
	assert.Equal(t, []transport.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}, missing)
	for _, gi := range f.Groups() {
		assert.NotEqual(t, "nobody", gi.Name)
	}

	// Every partition b would own committed: b joins.
	require.NoError(t, a.(*Consumer).CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 1, Offset: 0}))
	c, missing, err = f.SubscribeCommitted(ctx, sub("g", "b", transport.StartLatest, "t"))
	require.NoError(t, err)
	require.Empty(t, missing)
	defer c.Close()
	assert.Equal(t, map[string][]int32{"t": {1}}, c.(*Consumer).Assignment())
	assert.Equal(t, map[string][]int32{"t": {0}}, a.(*Consumer).Assignment())
}
