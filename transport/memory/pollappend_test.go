package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// PollAppend returns what Poll would, in the caller's buffer when the
// records fit in it and in a new one when they do not; records past the
// new batch's end are left as they were, and the broker's copies are not
// changed by a caller overwriting the buffer.
func TestPollAppendReusesTheCallersBuffer(t *testing.T) {
	b, err := New(WithPartitions(1), WithMaxPollRecords(3))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	c, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"t"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	mc := c.(*Consumer)
	for i := range 5 {
		_, err := b.Produce(ctx, transport.Message{Topic: "t", Value: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}

	buf := make([]transport.Message, 0, 3)
	got, err := mc.PollAppend(ctx, buf)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Same(t, &buf[:1][0], &got[0], "three records fit: the caller's buffer")
	for i := range got {
		assert.Equal(t, fmt.Sprint(i), string(got[i].Value))
		assert.Equal(t, int64(i), got[i].Offset)
	}
	got[0] = transport.Message{Value: []byte("overwritten")} // the buffer is the caller's

	got2, err := mc.PollAppend(ctx, got)
	require.NoError(t, err)
	require.Len(t, got2, 2)
	assert.Same(t, &buf[:1][0], &got2[0], "a buffer passed back is reused from its start")
	assert.Equal(t, "3", string(got2[0].Value))
	assert.Equal(t, "4", string(got2[1].Value))

	small := make([]transport.Message, 0, 1)
	out, err := b.Fetch(ctx, "t", 0, 0, 5)
	require.NoError(t, err)
	require.Len(t, out, 5)
	assert.Equal(t, "0", string(out[0].Value), "the broker's record is not the caller's buffer")
	_, err = b.Produce(ctx, transport.Message{Topic: "t", Value: []byte("5")}, transport.Message{Topic: "t", Value: []byte("6")})
	require.NoError(t, err)
	got3, err := mc.PollAppend(ctx, small)
	require.NoError(t, err)
	require.Len(t, got3, 2, "more than dst holds: a new array")
	assert.Equal(t, "5", string(got3[0].Value))
	assert.Equal(t, "6", string(got3[1].Value))
	assert.Zero(t, small[:1][0], "a buffer too small is not written")
}
