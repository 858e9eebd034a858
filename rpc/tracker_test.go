package rpc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// trackerT drives a tracker by partition and offset.
type trackerT struct {
	*tracker
	t       *testing.T
	tickets map[[2]int64]ticket
}

func newTrackerT(t *testing.T) *trackerT {
	return &trackerT{tracker: newTracker(), t: t, tickets: map[[2]int64]ticket{}}
}

func (tt *trackerT) add(p int32, off int64) bool {
	tk, ok := tt.tracker.add(&transport.Message{Topic: "t", Partition: p, Offset: off}, tt.polled())
	if ok {
		tt.tickets[[2]int64{int64(p), off}] = tk
	}
	return ok
}

func (tt *trackerT) done(p int32, off int64) bool {
	tk, ok := tt.tickets[[2]int64{int64(p), off}]
	if !ok {
		tk = ticket{m: transport.Message{Topic: "t", Partition: p, Offset: off}}
	}
	return tt.complete(&tk)
}

// commitAll takes the uncommitted marks and records them as committed.
func (tt *trackerT) commitAll() []transport.Message {
	var out []transport.Message
	for _, mk := range tt.uncommitted() {
		out = append(out, mk.m)
		tt.committed(&mk)
	}
	return out
}

func TestTrackerWatermark(t *testing.T) {
	tr := newTrackerT(t)
	for _, off := range []int64{10, 11, 12, 14} { // 13 absent: offsets need not be contiguous
		require.True(t, tr.add(0, off))
	}
	tr.add(1, 5)
	assert.False(t, tr.done(0, 12), "12 done but 10 and 11 are not")
	assert.Nil(t, tr.commitAll())
	assert.True(t, tr.done(0, 10))
	assert.Equal(t, []transport.Message{{Topic: "t", Partition: 0, Offset: 10}}, tr.commitAll())
	assert.True(t, tr.done(0, 11), "11 completes the prefix up to 12")
	assert.True(t, tr.done(1, 5))
	assert.ElementsMatch(t, []transport.Message{{Topic: "t", Partition: 0, Offset: 12}, {Topic: "t", Partition: 1, Offset: 5}}, tr.commitAll())
	assert.False(t, tr.done(0, 99), "unknown offsets are ignored")
	// Redelivered records at or below the watermark are not tracked.
	tr.add(0, 11)
	assert.False(t, tr.done(0, 11))
	assert.Nil(t, tr.commitAll())
	assert.True(t, tr.done(0, 14))
	assert.Equal(t, []transport.Message{{Topic: "t", Partition: 0, Offset: 14}}, tr.commitAll())
	// Out of order above the watermark: inserted in place, once.
	tr.add(0, 20)
	tr.add(0, 16)
	tr.add(0, 18)
	assert.False(t, tr.add(0, 16), "a live copy is not dispatched twice")
	assert.False(t, tr.done(0, 20))
	assert.False(t, tr.done(0, 18))
	assert.True(t, tr.done(0, 16))
	assert.Equal(t, []transport.Message{{Topic: "t", Partition: 0, Offset: 20}}, tr.commitAll())
}

// A mark whose commit failed stays uncommitted until a commit succeeds
// (issue 13, bug 8: the dirty flag was cleared before the commit).
func TestTrackerFailedCommitStaysUncommitted(t *testing.T) {
	tr := newTrackerT(t)
	tr.add(0, 3)
	tr.done(0, 3)
	marks := tr.uncommitted()
	require.Len(t, marks, 1)
	// The commit failed: nothing recorded. The next look still has it.
	assert.Equal(t, marks, tr.uncommitted())
	tr.committed(&marks[0])
	assert.Empty(t, tr.uncommitted())
}

// After a revocation, a ticket of the old epoch is not current, does not
// move a watermark and cannot commit: a partition that comes back is never
// committed backwards by stale work.
func TestTrackerRevokedPartition(t *testing.T) {
	tr := newTrackerT(t)
	tr.add(0, 10)
	tr.add(0, 11)
	old10 := tr.tickets[[2]int64{0, 10}]
	old11 := tr.tickets[[2]int64{0, 11}]
	tr.revoke([]transport.TopicPartition{{Topic: "t", Partition: 0}})
	assert.False(t, tr.current(&old10))
	// The partition comes back, and the new epoch handles 10..20.
	for off := int64(10); off <= 20; off++ {
		tr.add(0, off)
		tr.done(0, off)
	}
	assert.Equal(t, []transport.Message{{Topic: "t", Partition: 0, Offset: 20}}, tr.commitAll())
	// The old epoch's work finishes late: nothing moves, nothing to commit.
	assert.False(t, tr.complete(&old10))
	assert.False(t, tr.complete(&old11))
	assert.Empty(t, tr.uncommitted())
	// A mark of an ended epoch is not recorded either.
	tr.add(1, 1)
	tr.done(1, 1)
	marks := tr.uncommitted()
	tr.revoke([]transport.TopicPartition{{Topic: "t", Partition: 1}})
	tr.add(1, 0)
	tr.committed(&marks[0])
	tr.done(1, 0)
	assert.Equal(t, []transport.Message{{Topic: "t", Partition: 1, Offset: 0}}, tr.commitAll())
}

// A record polled before its partition was revoked is not dispatched: the
// batch a busy server holds does not run records of a partition that moved.
// One polled after the revocation (the partition came back) is.
func TestTrackerStaleBatchRefused(t *testing.T) {
	tr := newTracker()
	m := func(off int64) *transport.Message { return &transport.Message{Topic: "t", Partition: 0, Offset: off} }
	polled := tr.polled()
	_, ok := tr.add(m(1), polled)
	require.True(t, ok)
	tr.revoke([]transport.TopicPartition{{Topic: "t", Partition: 0}})
	_, ok = tr.add(m(2), polled)
	assert.False(t, ok, "the rest of the batch polled before the revocation is stale")
	_, ok = tr.add(m(1), tr.polled())
	assert.True(t, ok, "a later poll's records of the partition are taken")
}

// pending counts the records handled and not below a committed watermark:
// records done above one still running count, a mark read and not (yet)
// committed takes nothing off, a commit takes off what its mark passed, a
// revoked partition's count goes with it, and a record's second
// completion counts nothing.
func TestTrackerPendingCountsHandledUncommitted(t *testing.T) {
	tt := newTrackerT(t)
	for off := int64(0); off < 5; off++ {
		require.True(t, tt.add(0, off))
	}
	require.True(t, tt.add(1, 0))
	// 0 runs on; 1..4 are done above it: handled, none committable.
	for off := int64(1); off < 5; off++ {
		tt.done(0, off)
	}
	assert.Equal(t, int64(4), tt.pending.Load())
	assert.Empty(t, tt.uncommitted(), "no watermark moved")
	tt.done(0, 0) // the mark passes all five
	tt.done(1, 0)
	assert.Equal(t, int64(6), tt.pending.Load())
	tt.done(0, 3) // completed again: no longer live, counts nothing
	assert.Equal(t, int64(6), tt.pending.Load())

	marks := tt.uncommitted()
	require.Len(t, marks, 2)
	assert.Equal(t, int64(6), tt.pending.Load(), "marks read, not committed (a failed commit)")
	for i := range marks {
		if marks[i].m.Partition == 0 {
			tt.committed(&marks[i])
		}
	}
	assert.Equal(t, int64(1), tt.pending.Load(), "partition 0's five committed")
	tt.committed(&marks[0]) // told twice (finalCommit after the committer): nothing more
	tt.committed(&marks[1])
	assert.Equal(t, int64(0), tt.pending.Load())

	// Handled, then revoked before a commit: the next owner's to deliver
	// again, nothing this member can commit.
	require.True(t, tt.add(1, 1))
	require.True(t, tt.add(1, 2))
	tt.done(1, 2)
	assert.Equal(t, int64(1), tt.pending.Load())
	stale := tt.uncommitted() // empty: 1 still runs
	assert.Empty(t, stale)
	tt.revoke([]transport.TopicPartition{{Topic: "t", Partition: 1}})
	assert.Equal(t, int64(0), tt.pending.Load())
	tt.done(1, 1) // finishing after the revocation counts nothing
	assert.Equal(t, int64(0), tt.pending.Load())
}
