package memory

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The stale-commit fix refuses any commit below the offset where the
// member's current assignment began, with ErrNotAssigned. Kafka's rule is
// the generation, not the offset: a member that owns the partition in the
// current generation may commit any offset, lower ones included. That is
// how a consumer rewinds its group to replay records (the REST API's
// explicit commit of a lower offset, CommitOffsets here, whose doc says it
// "stores each Offset exactly as given"). The offset rule refuses this
// legitimate rewind, and with ErrNotAssigned, which callers (rpc's
// committer) take for "the partition is gone" although the member still
// owns it.
func TestBreak2RewindCommitRefused(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "r", 10)
	msgs := pollN(t, a, 10)
	require.NoError(t, a.Commit(ctx, msgs[len(msgs)-1])) // committed: 10
	require.NoError(t, a.Close())

	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	f.pollEmpty(t, b) // b owns partition 0 from offset 10
	require.Equal(t, map[string][]int32{"t": {0}}, b.Assignment())
	// b, the owner in the current generation, rewinds its group to replay.
	err := b.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 3})
	require.NoError(t, err, "a rewind by the partition's current owner is refused")
}
