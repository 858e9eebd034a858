package rpc

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A partition revoked while a Poll is in progress: the Poll's records of
// it (offsets 5 and 6, read before the revocation) are taken, as add's
// contract says (the partition may have come back during the Poll), and
// begin an epoch of their own. When the partition really comes back later
// (no callback tells of that), it is read again from the group's committed
// offset, 3: records 3 and 4, of the ended epoch, may never have finished.
// They are below that epoch's mark (6) but were never tracked in it: they
// must hold the watermark back, not be "delivered again after they were
// handled". Otherwise a later record done (7) commits past 3 while 3 runs.
func TestBreak8StaleEpochDoesNotPassRedeliveryBelowIt(t *testing.T) {
	tr := newTracker()
	msg := func(off int64) *transport.Message {
		return &transport.Message{Topic: "t", Partition: 0, Offset: off}
	}
	p := []transport.TopicPartition{{Topic: "t", Partition: 0}}
	polled := tr.polled()
	for _, off := range []int64{3, 4} {
		_, ok := tr.add(msg(off), polled)
		require.True(t, ok)
	}
	before := tr.polled() // a Poll starts; during it, the partition is revoked
	tr.revoke(p)
	require.Greater(t, tr.polled(), before)
	polled = tr.polled() // taken once the Poll returned
	var stale []ticket
	for _, off := range []int64{5, 6} {
		tk, ok := tr.add(msg(off), polled)
		require.True(t, ok, "a revocation during the Poll: taken")
		stale = append(stale, tk)
	}
	for i := range stale {
		tr.complete(&stale[i])
	}
	for _, mk := range tr.uncommitted() {
		tr.refused(&mk) // the partition is another member's now
	}

	// The partition comes back: read again from the committed offset 3.
	polled = tr.polled()
	again, ok := tr.add(msg(3), polled)
	require.True(t, ok)
	for _, off := range []int64{4, 5, 6} {
		tk, ok := tr.add(msg(off), polled)
		require.True(t, ok)
		tr.complete(&tk) // 4 runs again; 5 and 6 are answered by the dedup window
	}
	seven, ok := tr.add(msg(7), polled)
	require.True(t, ok)
	tr.complete(&seven)
	for _, mk := range tr.uncommitted() {
		require.Less(t, mk.m.Offset, int64(3), "a mark at or past offset 3 while 3 runs: its commit passes unfinished work")
	}
	tr.complete(&again) // 3 finishes: everything up to 7 is done
	marks := tr.uncommitted()
	require.Len(t, marks, 1)
	require.Equal(t, int64(7), marks[0].m.Offset)
}
