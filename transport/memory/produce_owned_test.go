package memory

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// ProduceOwned keeps the records' memory instead of copying it, fills the
// caller's slice in place, and otherwise behaves as Produce.
func TestProduceOwned(t *testing.T) {
	b := newBroker(t, WithTopic("t", 2), WithMaxMessageBytes(64))
	defer b.Close()
	ctx := context.Background()
	val := append(make([]byte, 0, 16), `{"a":1}`...)
	hs := make([]transport.Header, 1, 4)
	hs[0] = transport.Header{Key: "k", Value: "v"}
	msgs := []transport.Message{
		{Topic: "t", Key: "x", Value: val, Headers: hs},
		{Topic: "t", Partition: 1, ManualPartition: true, Value: val, Headers: hs}, // shared by two records
		{Topic: "t", Partition: 1, ManualPartition: true, Value: []byte{}},
	}
	out, err := b.ProduceOwned(ctx, msgs...)
	require.NoError(t, err)
	require.Len(t, out, 3)
	assert.Same(t, &msgs[0], &out[0], "filled in place")
	for i := range out {
		assert.False(t, out[i].ManualPartition)
		assert.False(t, out[i].Time.IsZero())
	}
	assert.Equal(t, int32(1), out[1].Partition)
	assert.Equal(t, int64(0), out[1].Offset)
	assert.Equal(t, int64(1), out[2].Offset)

	got, err := b.Fetch(ctx, "t", 1, 0, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Same(t, &val[0], &got[0].Value[0], "the value is kept, not copied")
	assert.Same(t, &hs[0], &got[0].Headers[0], "the headers are kept, not copied")
	assert.Equal(t, len(got[0].Headers), cap(got[0].Headers), "a reader's append cannot write past the record's headers")
	assert.Equal(t, len(got[0].Value), cap(got[0].Value), "nor past its value")
	assert.NotNil(t, got[1].Value, "an empty value stays non-nil")
	assert.Empty(t, got[1].Value)

	// Checks as for Produce: one bad record and nothing is appended.
	_, err = b.ProduceOwned(ctx, transport.Message{Topic: "t", Value: val}, transport.Message{Topic: "t", Value: make([]byte, 100)})
	require.ErrorIs(t, err, transport.ErrMessageTooLarge)
	_, err = b.ProduceOwned(ctx, transport.Message{Topic: "t", Partition: 5, ManualPartition: true})
	require.ErrorIs(t, err, transport.ErrInvalid)
	earliest, latest, err := b.Offsets("t", 1)
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 2}, [2]int64{earliest, latest})

	// Produce still copies.
	own := []byte(`{"b":2}`)
	out, err = b.Produce(ctx, transport.Message{Topic: "t", Partition: 0, ManualPartition: true, Value: own})
	require.NoError(t, err)
	own[0] = 'X'
	assert.Equal(t, `{"b":2}`, string(out[0].Value))

	b.Close()
	_, err = b.ProduceOwned(ctx, transport.Message{Topic: "t"})
	assert.True(t, errors.Is(err, transport.ErrClosed), "%v", err)
}
