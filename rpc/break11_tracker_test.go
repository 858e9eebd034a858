package rpc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A record done above one still running stays live (the watermark cannot
// pass it). Delivered again in the same epoch (a transport that does not
// report revocations, as the REST API, reads the partition again from the
// group's offset after it moved away and came back), the copy is
// dispatched (tracker.add: the dedup window answers it) and completed a
// second time. That second completion must count nothing: it is the same
// record, and the mark passes it once. Counted twice, pending never comes
// back down: the excess outlives every commit for the rest of the epoch
// (no revocation ends it), and once it reaches the dedup window's size
// every record handled holds its worker for a commit round trip.
func TestBreak11LiveDoneCopyCountsOnce(t *testing.T) {
	tt := newTrackerT(t)
	for off := int64(0); off < 9; off++ {
		require.True(t, tt.add(0, off))
	}
	for off := int64(1); off < 9; off++ { // 0 runs on
		tt.done(0, off)
	}
	require.Equal(t, int64(8), tt.pending.Load())
	// The partition read again from offset 0: 0 is live and running (not
	// dispatched), 1..8 are live and done (dispatched: answered by dedup).
	assert.False(t, tt.add(0, 0), "a running record is not dispatched twice")
	for off := int64(1); off < 9; off++ {
		require.True(t, tt.add(0, off), "a done copy is dispatched (dedup answers it)")
		tt.done(0, off)
	}
	assert.Equal(t, int64(8), tt.pending.Load(), "a done record's second completion was counted")
	tt.done(0, 0)
	tt.commitAll()
	assert.Equal(t, int64(0), tt.pending.Load(), "everything handled is committed, yet pending stays up")
	assert.Empty(t, tt.uncommitted())
}
