package kafkabackend_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// ListCommitted answers any number of partitions, of several topics, with
// one OffsetFetch naming them, as Committed would answer each: -1 without
// a commit or without the group, an unknown topic or partition refused
// before asking, a partition's error mapped to the sentinel of its status.
func TestListCommittedAnswersManyPartitionsInOneRequest(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"a": 8, "b": 3}})
	var fetches atomic.Int64
	c.Kfake.ControlKey(int16(kmsg.OffsetFetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake.KeepControl()
		fetches.Add(1)
		return nil, nil, false // observed, answered by the cluster
	})
	during := func(fn func()) int64 {
		before := fetches.Load()
		fn()
		return fetches.Load() - before
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	opts, err := c.Config.ClientOpts()
	require.NoError(t, err)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()
	var os kadm.Offsets
	os.AddOffset("a", 1, 5, -1)
	os.AddOffset("a", 7, 9, -1)
	os.AddOffset("b", 2, 4, -1)
	require.NoError(t, kadm.NewClient(cl).CommitAllOffsets(ctx, "g", os))

	tp := func(topic string, p int32) transport.TopicPartition {
		return transport.TopicPartition{Topic: topic, Partition: p}
	}
	b := c.Backend
	var got []int64
	n := during(func() {
		got, err = b.ListCommitted(ctx, "g", []transport.TopicPartition{tp("a", 1), tp("a", 0), tp("b", 2), tp("a", 1), tp("a", 7), tp("b", 0)})
	})
	require.NoError(t, err)
	assert.Equal(t, []int64{5, -1, 4, 5, 9, -1}, got)
	assert.EqualValues(t, 1, n, "OffsetFetch requests")

	var one int64
	n = during(func() { one, err = b.Committed(ctx, "g", tp("a", 7)) })
	require.NoError(t, err)
	assert.EqualValues(t, 9, one)
	assert.EqualValues(t, 1, n, "OffsetFetch requests of Committed")

	n = during(func() { got, err = b.ListCommitted(ctx, "nobody", []transport.TopicPartition{tp("a", 1), tp("b", 2)}) })
	require.NoError(t, err)
	assert.Equal(t, []int64{-1, -1}, got, "a group that does not exist")
	assert.EqualValues(t, 1, n)

	got, err = b.ListCommitted(ctx, "g", nil)
	require.NoError(t, err)
	assert.Empty(t, got)

	// Refused before asking the coordinator, for the first partition of
	// tps that does not exist.
	n = during(func() {
		_, err = b.ListCommitted(ctx, "g", []transport.TopicPartition{tp("a", 1), tp("missing", 0), tp("a", 8)})
	})
	assert.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, err = b.ListCommitted(ctx, "g", []transport.TopicPartition{tp("a", 1), tp("a", 8), tp("missing", 0)})
	assert.ErrorIs(t, err, transport.ErrInvalid)
	assert.Zero(t, n)

	// A partition's error fails the call, mapped as Committed maps it.
	c.Kfake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.OffsetFetch}, Topic: "b", Partitions: []int32{2},
		Err: kerr.TopicAuthorizationFailed, Count: 1})
	_, err = b.ListCommitted(ctx, "g", []transport.TopicPartition{tp("a", 1), tp("b", 2)})
	assert.ErrorIs(t, err, transport.ErrPermissionDenied)
	got, err = b.ListCommitted(ctx, "g", []transport.TopicPartition{tp("a", 1), tp("b", 2)})
	require.NoError(t, err, "the fault answered one request")
	assert.Equal(t, []int64{5, 4}, got)
}
