package kafkabackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pollUntil polls m until n records came or the deadline passes.
func pollUntil(t *testing.T, m transport.Consumer, n int, d time.Duration) []transport.Message {
	t.Helper()
	deadline := time.Now().Add(d)
	var got []transport.Message
	for len(got) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		msgs, err := m.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			require.NoError(t, err)
		}
		got = append(got, msgs...)
	}
	require.Len(t, got, n)
	return got
}

func TestProduceSubscribePollCommit(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 3}})
	b := c.Backend
	ctx := ctxT(t, 30*time.Second)

	topics, err := b.Topics(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int32{"t": 3}, topics)

	before, err := b.Produce(ctx, transport.Message{Topic: "t", Key: "k", Value: []byte("before")})
	require.NoError(t, err)

	c1, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "i1", Topics: []string{"t"}})
	require.NoError(t, err)
	m := c1.(restserver.Member)
	assert.Len(t, m.Assignment()["t"], 3)

	out, err := b.Produce(ctx,
		transport.Message{Topic: "t", Key: "k", Value: []byte("a"), Headers: []transport.Header{{Key: "h", Value: "v"}}},
		transport.Message{Topic: "t", Value: []byte("b")},
		transport.Message{Topic: "t", Value: []byte("c"), Partition: 2, ManualPartition: true})
	require.NoError(t, err)
	require.Len(t, out, 3)
	assert.Equal(t, before[0].Partition, out[0].Partition, "same key, same partition")
	assert.Equal(t, int32(2), out[2].Partition)

	got := pollUntil(t, m, 3, 10*time.Second)
	vals := map[string]transport.Message{}
	for _, g := range got {
		vals[string(g.Value)] = g
	}
	assert.Contains(t, vals, "a")
	assert.NotContains(t, vals, "before", "latest: a record produced before the join is not read")
	ma := vals["a"]
	h, _ := ma.Header("h")
	assert.Equal(t, "v", h)

	require.NoError(t, m.CommitPositions(ctx))
	off, err := b.Committed(ctx, "g", transport.TopicPartition{Topic: "t", Partition: out[0].Partition})
	require.NoError(t, err)
	want := int64(-1)
	for _, g := range got {
		if g.Partition == out[0].Partition {
			want = max(want, g.Offset+1)
		}
	}
	assert.Equal(t, want, off)

	// Fenced: below the start of the assignment is refused; a partition of
	// another topic too.
	err = m.CommitOffsetsFenced(ctx, transport.Offset{Topic: "t", Partition: before[0].Partition, Offset: before[0].Offset})
	assert.ErrorIs(t, err, transport.ErrNotAssigned)
	err = m.CommitOffsets(ctx, transport.Offset{Topic: "other", Partition: 0, Offset: 1})
	assert.ErrorIs(t, err, transport.ErrNotAssigned)
	require.NoError(t, m.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 2, Offset: out[2].Offset + 1}))

	// A second member takes partitions only when the first leaves: Close
	// leaves by instance id, so the second gets all three at once.
	require.NoError(t, m.Close())
	start := time.Now()
	c2, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "i2", Topics: []string{"t"}})
	require.NoError(t, err)
	defer c2.Close()
	require.Eventually(t, func() bool { return len(c2.(restserver.Member).Assignment()["t"]) == 3 }, 5*time.Second, 10*time.Millisecond)
	assert.Less(t, time.Since(start), 5*time.Second, "the partitions moved at once, not after a session timeout")
}

func TestUnknownTopicIsFast(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 1}})
	ctx := ctxT(t, 30*time.Second)
	start := time.Now()
	_, err := c.Backend.Produce(ctx, transport.Message{Topic: "nope", Value: []byte("x")})
	assert.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, err = c.Backend.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"nope"}})
	assert.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, _, err = c.Backend.Offsets(ctx, transport.TopicPartition{Topic: "nope"})
	assert.ErrorIs(t, err, transport.ErrUnknownTopic)
	assert.Less(t, time.Since(start), time.Second)
	_, _, err = c.Backend.Offsets(ctx, transport.TopicPartition{Topic: "t", Partition: 5})
	assert.ErrorIs(t, err, transport.ErrInvalid)
	_, err = c.Backend.Produce(ctx, transport.Message{Topic: "t", Value: make([]byte, 2<<20)})
	assert.ErrorIs(t, err, transport.ErrMessageTooLarge)
}

// Keys land on the partition the embedded broker picks.
func TestKeyPlacementMatchesEmbeddedBroker(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"k": 7}})
	mb, err := memory.New(memory.WithTopic("k", 7))
	require.NoError(t, err)
	defer mb.Close()
	ctx := ctxT(t, 30*time.Second)
	var km, mm []transport.Message
	for i := range 200 {
		key := string(rune('a'+i%26)) + string(rune('A'+i%23)) + string(make([]byte, i%5))
		km = append(km, transport.Message{Topic: "k", Key: key, Value: []byte("v")})
	}
	mm = append(mm, km...)
	ko, err := c.Backend.Produce(ctx, km...)
	require.NoError(t, err)
	mo, err := mb.Produce(ctx, mm...)
	require.NoError(t, err)
	for i := range ko {
		require.Equal(t, mo[i].Partition, ko[i].Partition, "key %q", km[i].Key)
	}
}

func TestFetchAndWaitAny(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"f": 2}})
	b := c.Backend
	ctx := ctxT(t, 30*time.Second)
	_, err := b.Produce(ctx, transport.Message{Topic: "f", Value: []byte("0"), Partition: 1, ManualPartition: true},
		transport.Message{Topic: "f", Value: []byte("1"), Partition: 1, ManualPartition: true})
	require.NoError(t, err)
	msgs, err := b.Fetch(ctx, transport.Offset{Topic: "f", Partition: 1, Offset: 1}, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "1", string(msgs[0].Value))

	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = b.WaitAny(wctx, []transport.Offset{{Topic: "f", Partition: 0}, {Topic: "f", Partition: 1, Offset: 2}})
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() {
		done <- b.WaitAny(ctx, []transport.Offset{{Topic: "f", Partition: 0}, {Topic: "f", Partition: 1, Offset: 2}})
	}()
	_, err = b.Produce(ctx, transport.Message{Topic: "f", Value: []byte("x"), Partition: 0, ManualPartition: true})
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("WaitAny did not see the record")
	}
	e, l, err := b.Offsets(ctx, transport.TopicPartition{Topic: "f", Partition: 1})
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 2}, [2]int64{e, l})
	off, err := b.OffsetForTime(ctx, transport.TopicPartition{Topic: "f", Partition: 1}, time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(2), off)
}
