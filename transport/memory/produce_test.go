package memory

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

func TestNewDefaultsAndOptions(t *testing.T) {
	b := newBroker(t)
	defer b.Close()
	assert.Equal(t, defaults(), b.cfg)
	assert.Equal(t, config{
		partitions: 1, autoCreate: true, retentionRecords: 100_000, retentionBytes: 64 << 20, retentionAge: 7 * 24 * time.Hour,
		maxMessageBytes: 1 << 20, sessionTimeout: 30 * time.Second, maxPollInterval: 5 * time.Minute,
		maxPollRecords: 1000, fetchMaxBytes: 50 << 20, partitionBytes: 1 << 20,
		maxTopics: 10_000, maxTotalParts: 100_000, offsetsRetention: 7 * 24 * time.Hour,
	}, b.cfg)

	b2 := newBroker(t, WithPartitions(3), WithAutoCreate(false), WithRetention(10, 1000), WithMaxMessageBytes(50),
		WithSessionTimeout(time.Second), WithMaxPollInterval(time.Minute), WithMaxPollRecords(7),
		WithTopic("a", 2), WithTopic("b", 0), WithTopic("a", 5))
	defer b2.Close()
	assert.Equal(t, 3, b2.cfg.partitions)
	assert.False(t, b2.cfg.autoCreate)
	assert.Equal(t, 10, b2.cfg.retentionRecords)
	assert.Equal(t, int64(1000), b2.cfg.retentionBytes)
	assert.Equal(t, 50, b2.cfg.maxMessageBytes)
	assert.Equal(t, time.Second, b2.cfg.sessionTimeout)
	assert.Equal(t, time.Minute, b2.cfg.maxPollInterval)
	assert.Equal(t, 7, b2.cfg.maxPollRecords)
	assert.Equal(t, map[string]int32{"a": 5, "b": 3}, b2.Topics(), "repeated WithTopic replaces; 0 means WithPartitions")
}

// Regression (issue 8 point 7): bad options used to be clamped silently
// (WithPartitions(20000) became 1); New now fails naming the option.
func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		opt  Option
		want string
	}{
		{WithPartitions(20000), "WithPartitions(20000)"},
		{WithPartitions(0), "WithPartitions(0)"},
		{WithRetention(-1, 10), "WithRetention(-1, 10)"},
		{WithRetention(10, -1), "WithRetention(10, -1)"},
		{WithMaxMessageBytes(-5), "WithMaxMessageBytes(-5)"},
		{WithSessionTimeout(-time.Second), "WithSessionTimeout(-1s)"},
		{WithMaxPollInterval(0), "WithMaxPollInterval(0s)"},
		{WithMaxPollRecords(0), "WithMaxPollRecords(0)"},
		{WithFetchMaxBytes(0, 1), "WithFetchMaxBytes(0, 1)"},
		{WithMaxTopics(1, 0), "WithMaxTopics(1, 0)"},
		{WithOffsetsRetention(0), "WithOffsetsRetention(0s)"},
		{WithRetentionAge(-time.Second), "WithRetentionAge(-1s)"},
		{WithTopic("bad name", 1), `WithTopic("bad name", 1)`},
		{WithTopic("t", maxPartitions+1), `WithTopic("t", 10001)`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			b, err := New(WithPartitions(2), tt.opt)
			require.ErrorIs(t, err, transport.ErrInvalid)
			assert.Nil(t, b)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestCreateTopic(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.CreateTopic("orders", 3))
	require.NoError(t, f.CreateTopic("orders", 3), "same count again is fine")
	err := f.CreateTopic("orders", 4)
	require.ErrorIs(t, err, transport.ErrInvalid)
	assert.EqualError(t, err, `memory: create topic "orders" with 4 partitions: it exists with 3: transport: invalid argument`)

	for _, bad := range []string{"", ".", "..", "a b", "ünï", "a/b", strings.Repeat("x", 250)} {
		assert.ErrorIs(t, f.CreateTopic(bad, 1), transport.ErrInvalid, "name %q", bad)
	}
	require.NoError(t, f.CreateTopic(strings.Repeat("x", 249), 1))
	require.NoError(t, f.CreateTopic("A-z_0.9", 1))
	for _, n := range []int{0, -1, maxPartitions + 1} {
		assert.ErrorIs(t, f.CreateTopic("counts", n), transport.ErrInvalid, "count %d", n)
	}

	topics := f.Topics()
	assert.Equal(t, int32(3), topics["orders"])
	topics["orders"] = 99 // a copy
	assert.Equal(t, int32(3), f.Topics()["orders"])
}

func TestProduceFillsInMessages(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	given := time.Date(2024, 1, 2, 3, 4, 5, 6_789_123, time.UTC)
	out := f.produce(t,
		transport.Message{Topic: "t", Partition: 1, ManualPartition: true, Key: "k", Value: []byte("v"),
			Headers: []transport.Header{{Key: "h", Value: "1"}, {Key: "h", Value: "2"}}},
		transport.Message{Topic: "t", Partition: 1, ManualPartition: true, Time: given, Offset: 99},
		transport.Message{Topic: "t", Partition: 1, ManualPartition: true, Value: []byte{}},
	)
	now := f.clock.now().Truncate(time.Millisecond)
	assert.Equal(t, transport.Message{Topic: "t", Partition: 1, Offset: 0, Time: now, Key: "k", Value: []byte("v"),
		Headers: []transport.Header{{Key: "h", Value: "1"}, {Key: "h", Value: "2"}}}, out[0])
	assert.Equal(t, int64(1), out[1].Offset, "the caller's Offset is ignored")
	assert.True(t, out[1].Time.Equal(given.Truncate(time.Millisecond)), "a given Time is kept, to the ms: %v", out[1].Time)
	assert.Nil(t, out[1].Value, "a nil Value stays nil")
	assert.NotNil(t, out[2].Value, "an empty Value stays non-nil")
	assert.Empty(t, out[2].Value)
	assert.False(t, out[0].ManualPartition)

	// Consumers see the same records.
	got, err := f.Fetch(context.Background(), "t", 1, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, out, got)
	v, ok := got[0].Header("h")
	assert.True(t, ok)
	assert.Equal(t, "1", v)
}

func TestProduceTimeTruncatedToMillisecond(t *testing.T) {
	f := newFixture(t)
	f.clock.advance(1_234_567 * time.Nanosecond) // not on a millisecond
	out := f.produce(t, transport.Message{Topic: "t"})
	assert.Zero(t, out[0].Time.Nanosecond()%int(time.Millisecond))
	assert.Equal(t, f.clock.now().UnixMilli(), out[0].Time.UnixMilli())
}

func TestProduceCopiesCallerData(t *testing.T) {
	f := newFixture(t)
	val := []byte("hello")
	hdrs := []transport.Header{{Key: "a", Value: "b"}}
	f.produce(t, transport.Message{Topic: "t", Value: val, Headers: hdrs}, transport.Message{Topic: "t", Value: []byte("second")})
	copy(val, "XXXXX")
	hdrs[0] = transport.Header{Key: "x", Value: "y"}

	got, err := f.Fetch(context.Background(), "t", 0, 0, 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "hello", string(got[0].Value))
	assert.Equal(t, []transport.Header{{Key: "a", Value: "b"}}, got[0].Headers)
	// Values of one batch share a buffer, but a reader's append cannot
	// overwrite a neighbour.
	_ = append(got[0].Value, "!!!!!!"...)
	assert.Equal(t, "second", string(got[1].Value))
}

func TestProduceRoundRobinForEmptyKey(t *testing.T) {
	f := newFixture(t, WithTopic("rr", 3))
	var parts []int32
	for range 6 {
		out := f.produce(t, transport.Message{Topic: "rr", Value: []byte("x")})
		parts = append(parts, out[0].Partition)
	}
	assert.Equal(t, []int32{0, 1, 2, 0, 1, 2}, parts)
	out := f.produce(t, transport.Message{Topic: "rr"}, transport.Message{Topic: "rr"}, transport.Message{Topic: "rr"})
	assert.Equal(t, []int32{0, 1, 2}, []int32{out[0].Partition, out[1].Partition, out[2].Partition})
	for p := range int32(3) {
		_, latest, err := f.Offsets("rr", p)
		require.NoError(t, err)
		assert.Equal(t, int64(3), latest, "partition %d", p)
	}
}

func TestProduceManualPartition(t *testing.T) {
	f := newFixture(t, WithTopic("m", 4))
	out := f.produce(t,
		transport.Message{Topic: "m", Partition: 3, ManualPartition: true, Key: "foobar"},
		transport.Message{Topic: "m", Partition: 0, ManualPartition: true},
		transport.Message{Topic: "m", Partition: 3, ManualPartition: true},
	)
	assert.Equal(t, []int32{3, 0, 3}, []int32{out[0].Partition, out[1].Partition, out[2].Partition})
	assert.Equal(t, []int64{0, 0, 1}, offsetsOf(out))

	for _, p := range []int32{-1, 4} {
		_, err := f.Produce(context.Background(),
			transport.Message{Topic: "m", Partition: 1, ManualPartition: true},
			transport.Message{Topic: "m", Partition: p, ManualPartition: true})
		require.ErrorIs(t, err, transport.ErrInvalid)
		assert.Contains(t, err.Error(), `produce to "m": partition`)
	}
	_, latest, err := f.Offsets("m", 1)
	require.NoError(t, err)
	assert.Zero(t, latest, "nothing of a failed batch is appended")
}

func TestProduceSizeLimit(t *testing.T) {
	f := newFixture(t, WithMaxMessageBytes(10))
	// Key 2 + Value 3 + header 2+3 = 10: exactly the limit.
	atLimit := transport.Message{Topic: "s", Key: "kk", Value: []byte("vvv"), Headers: []transport.Header{{Key: "hh", Value: "xyz"}}}
	f.produce(t, atLimit)
	over := atLimit
	over.Value = []byte("vvvv")
	_, err := f.Produce(context.Background(), atLimit, over)
	require.ErrorIs(t, err, transport.ErrMessageTooLarge)
	assert.EqualError(t, err, `memory: produce to "s": record 1 is 11 bytes, over the limit of 10: transport: message too large`)
	_, latest, err := f.Offsets("s", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), latest, "the batch with the large record appended nothing")

	d := newBroker(t)
	defer d.Close()
	_, err = d.Produce(context.Background(), transport.Message{Topic: "s", Value: make([]byte, 1<<20)})
	require.NoError(t, err, "1 MiB is the default limit")
	_, err = d.Produce(context.Background(), transport.Message{Topic: "s", Value: make([]byte, 1<<20+1)})
	require.ErrorIs(t, err, transport.ErrMessageTooLarge)
}

func TestProduceUnknownTopic(t *testing.T) {
	f := newFixture(t, WithAutoCreate(false), WithTopic("known", 1))
	_, err := f.Produce(context.Background(), transport.Message{Topic: "known"}, transport.Message{Topic: "nope"})
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	assert.EqualError(t, err, `memory: produce to "nope": transport: unknown topic`)
	_, latest, err := f.Offsets("known", 0)
	require.NoError(t, err)
	assert.Zero(t, latest)
	assert.Equal(t, map[string]int32{"known": 1}, f.Topics())

	_, err = f.Produce(context.Background(), transport.Message{Topic: "bad/name"})
	require.ErrorIs(t, err, transport.ErrInvalid)
	_, err = f.Produce(context.Background(), transport.Message{})
	require.ErrorIs(t, err, transport.ErrInvalid, "empty topic")
}

func TestProduceAutoCreates(t *testing.T) {
	f := newFixture(t, WithPartitions(3))
	out := f.produce(t, transport.Message{Topic: "fresh", Key: "foobar"})
	assert.Equal(t, int32(0), out[0].Partition, "1357151166 %% 3")
	assert.Equal(t, map[string]int32{"fresh": 3}, f.Topics())
	_, err := f.Produce(context.Background(), transport.Message{Topic: "in valid"})
	require.ErrorIs(t, err, transport.ErrInvalid, "auto-creation still checks the name")
}

func TestProduceEdgeCases(t *testing.T) {
	f := newFixture(t)
	out, err := f.Produce(context.Background())
	require.NoError(t, err)
	assert.Empty(t, out)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.Produce(ctx, transport.Message{Topic: "t"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, f.Topics(), "a cancelled produce does nothing")

	// Many records to several topics and partitions keep their order per
	// partition.
	require.NoError(t, f.CreateTopic("two", 2))
	var msgs []transport.Message
	for i := range 20 {
		topic := []string{"one", "two"}[i%2]
		msgs = append(msgs, transport.Message{Topic: topic, Partition: int32(i % 4 / 2 % 2), ManualPartition: topic == "two", Value: []byte{byte(i)}})
	}
	out = f.produce(t, msgs...)
	next := map[[2]any]int64{}
	for i, m := range out {
		k := [2]any{m.Topic, m.Partition}
		assert.Equal(t, next[k], m.Offset, "record %d", i)
		next[k]++
		assert.Equal(t, []byte{byte(i)}, m.Value)
	}
}
