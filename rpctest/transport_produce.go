package rpctest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Produce fills in Partition, Offset and Time and echoes the rest; Poll
// returns the same record with every field intact: header order and
// duplicate header keys kept, a zero Time set to the append time in
// milliseconds, a given Time kept, ManualPartition false.
func testProducePollRoundTrip(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, topic))

	given := time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	in := []transport.Message{
		{Topic: topic, Key: "key-1", Value: []byte(`{"n":1,"s":"héllo"}`), Headers: []transport.Header{
			{Key: "b", Value: "2"}, {Key: "a", Value: "1"}, {Key: "b", Value: "3"}, {Key: "empty", Value: ""},
		}},
		{Topic: topic, Value: []byte("no key, no headers")},
		{Topic: topic, Key: "key-3", Value: []byte("given time"), Time: given},
	}
	before := time.Now()
	out := mustProduce(t, e.tr, in...)
	after := time.Now()

	for i, m := range out {
		requireSameRecord(t, in[i], m, fmt.Sprintf("Produce result %d", i))
		assert.GreaterOrEqual(t, m.Partition, int32(0), "Produce result %d: partition", i)
		assert.Less(t, m.Partition, int32(e.parts), "Produce result %d: partition", i)
		assert.GreaterOrEqual(t, m.Offset, int64(0), "Produce result %d: offset", i)
		if in[i].Time.IsZero() {
			require.False(t, m.Time.IsZero(), "Produce result %d: a zero Time must be set to the append time", i)
			assert.True(t, m.Time.Equal(m.Time.Truncate(time.Millisecond)),
				"Produce result %d: append time %v must have millisecond precision", i, m.Time)
			assert.WithinRange(t, m.Time, before.Add(-clockSlack), after.Add(clockSlack),
				"Produce result %d: append time must be close to now", i)
		} else {
			assert.True(t, m.Time.Equal(given), "Produce result %d: a given Time must be kept: got %v, want %v", i, m.Time, given)
		}
	}

	got := pollUntil(t, c, len(in), waitTimeout)
	require.Len(t, got, len(in), "polled %s", describe(got))
	requireOffsetOrder(t, got)
	for _, p := range out {
		var found bool
		for _, m := range got {
			if m.Partition == p.Partition && m.Offset == p.Offset {
				found = true
				requireSameRecord(t, p, m, fmt.Sprintf("polled %s/%d@%d", topic, p.Partition, p.Offset))
				assert.True(t, m.Time.Equal(p.Time), "polled %s/%d@%d: Time %v, Produce returned %v",
					topic, p.Partition, p.Offset, m.Time, p.Time)
			}
		}
		require.True(t, found, "record %s/%d@%d returned by Produce was not polled (polled %s)",
			topic, p.Partition, p.Offset, describe(got))
	}
	pollNone(t, c)
}

// requireSameRecord requires got to carry want's topic, key, value and
// headers (nil and empty alike), and ManualPartition false.
func requireSameRecord(t testing.TB, want, got transport.Message, what string) {
	t.Helper()
	require.Equal(t, want.Topic, got.Topic, "%s: topic", what)
	require.Equal(t, want.Key, got.Key, "%s: key", what)
	require.True(t, bytes.Equal(want.Value, got.Value), "%s: value %q, want %q", what, got.Value, want.Value)
	wantH, gotH := want.Headers, got.Headers
	if len(wantH) == 0 {
		wantH = nil
	}
	if len(gotH) == 0 {
		gotH = nil
	}
	require.Equal(t, wantH, gotH, "%s: headers (order and duplicates are kept)", what)
	require.False(t, got.ManualPartition, "%s: ManualPartition must be false on returned messages", what)
}

// Produce returns the records in the order given, and offsets increase in
// that order within each partition, across batches and calls.
func testProduceOffsetsIncrease(t *testing.T, e *tenv) {
	topic := e.topic()
	var in []transport.Message
	for i := range 40 {
		in = append(in, transport.Message{Topic: topic, Key: fmt.Sprintf("k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)})
	}
	var out []transport.Message
	for _, batch := range [][]transport.Message{in[:15], in[15:16], in[16:30], in[30:31], in[31:]} {
		out = append(out, mustProduce(t, e.tr, batch...)...)
	}
	last := make(map[int32]int64)
	for i, m := range out {
		require.Equal(t, string(in[i].Value), string(m.Value), "Produce must return the records in the order given")
		if prev, ok := last[m.Partition]; ok {
			require.Greater(t, m.Offset, prev, "record %d (%q): offsets must increase within partition %d", i, m.Value, m.Partition)
		}
		last[m.Partition] = m.Offset
	}
}

// A batch with one invalid record fails with ErrInvalid and appends nothing.
func testProduceInvalidAllOrNothing(t *testing.T, e *tenv) {
	tests := []struct {
		name string
		bad  func(topic string) transport.Message
	}{
		{"EmptyTopic", func(string) transport.Message {
			return transport.Message{Topic: "", Value: []byte("bad")}
		}},
		{"NegativePartition", func(topic string) transport.Message {
			return transport.Message{Topic: topic, Partition: -1, ManualPartition: true, Value: []byte("bad")}
		}},
		{"PartitionPastTheEnd", func(topic string) transport.Message {
			return transport.Message{Topic: topic, Partition: int32(e.parts), ManualPartition: true, Value: []byte("bad")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := e.topic()
			batch := []transport.Message{
				{Topic: topic, Key: "good", Value: []byte("good-1")},
				tt.bad(topic),
				{Topic: topic, Value: []byte("good-2")},
			}
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			out, err := e.tr.Produce(ctx, batch...)
			require.ErrorIs(t, err, transport.ErrInvalid, "Produce of a batch holding %s", tt.name)
			require.Empty(t, out)
			requireTopicHolds(t, e, topic)
		})
	}
	t.Run("LastPartitionIsValid", func(t *testing.T) {
		topic := e.topic()
		out := mustProduce(t, e.tr, transport.Message{Topic: topic, Partition: int32(e.parts - 1), ManualPartition: true, Value: []byte("last")})
		require.Equal(t, int32(e.parts-1), out[0].Partition, "Features.Partitions = %d must match the transport", e.parts)
	})
}

// A record over the size limit fails the whole batch with
// ErrMessageTooLarge; a record under it is delivered intact.
func testProduceTooLarge(t *testing.T, e *tenv) {
	huge := bytes.Repeat([]byte("x"), e.f.MaxMessageBytes+1)
	tests := []struct {
		name  string
		batch func(topic string) []transport.Message
	}{
		{"Alone", func(topic string) []transport.Message {
			return []transport.Message{{Topic: topic, Value: huge}}
		}},
		{"InBatch", func(topic string) []transport.Message {
			return []transport.Message{
				{Topic: topic, Value: []byte("good-1")},
				{Topic: topic, Value: huge},
				{Topic: topic, Value: []byte("good-2")},
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := e.topic()
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			out, err := e.tr.Produce(ctx, tt.batch(topic)...)
			require.ErrorIs(t, err, transport.ErrMessageTooLarge)
			require.Empty(t, out)
			requireTopicHolds(t, e, topic)
		})
	}
	t.Run("UnderTheLimit", func(t *testing.T) {
		topic := e.topic()
		big := make([]byte, e.f.MaxMessageBytes/2)
		for i := range big {
			big[i] = 'a' + byte(i%26)
		}
		mustProduce(t, e.tr, transport.Message{Topic: topic, Value: big})
		requireTopicHolds(t, e, topic, big)
	})
}

// The same key always lands on the same partition of a topic, and many keys
// use more than one partition.
func testKeyStablePartition(t *testing.T, e *tenv) {
	topic := e.topic()
	const n = 50
	var batch []transport.Message
	for i := range n {
		batch = append(batch, transport.Message{Topic: topic, Key: fmt.Sprintf("key-%d", i), Value: []byte("batch")})
	}
	first := mustProduce(t, e.tr, batch...)
	partitionOf := make(map[string]int32, n)
	for _, m := range first {
		partitionOf[m.Key] = m.Partition
	}
	for i := n - 1; i >= 0; i-- {
		k := fmt.Sprintf("key-%d", i)
		m := mustProduce(t, e.tr, transport.Message{Topic: topic, Key: k, Value: []byte("alone")})[0]
		require.Equal(t, partitionOf[k], m.Partition, "key %q went to partition %d in a batch, %d alone", k, partitionOf[k], m.Partition)
	}
	require.GreaterOrEqual(t, len(partitionsOf(first)), 2, "%d distinct keys all went to one of %d partitions", n, e.parts)
}

// Keyless records are spread over the partitions.
func testKeylessSpread(t *testing.T, e *tenv) {
	topic := e.topic()
	var out []transport.Message
	for i := range 50 {
		out = append(out, mustProduce(t, e.tr, transport.Message{Topic: topic, Value: fmt.Appendf(nil, "v%d", i)})...)
	}
	require.GreaterOrEqual(t, len(partitionsOf(out)), 2, "50 keyless records, each produced alone, all went to one of %d partitions", e.parts)
}

// ManualPartition places a record on the partition given, whatever its key.
func testManualPartition(t *testing.T, e *tenv) {
	topic := e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, topic))
	var in []transport.Message
	for p := range e.parts {
		in = append(in, transport.Message{Topic: topic, Partition: int32(p), ManualPartition: true,
			Key: "one-key", Value: fmt.Appendf(nil, "to-p%d", p)})
	}
	out := mustProduce(t, e.tr, in...)
	for i, m := range out {
		require.Equal(t, in[i].Partition, m.Partition, "Produce of a record with ManualPartition")
		require.False(t, m.ManualPartition, "ManualPartition must be false on returned messages")
	}
	got := pollUntil(t, c, len(in), waitTimeout)
	requireExactlyOnce(t, out, got)
	for _, m := range got {
		require.Equal(t, fmt.Sprintf("to-p%d", m.Partition), string(m.Value), "polled record on the wrong partition")
		require.False(t, m.ManualPartition, "ManualPartition must be false on returned messages")
	}
}
