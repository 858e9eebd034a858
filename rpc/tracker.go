package rpc

import (
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// tracker keeps, per partition, the offsets handed to workers and the
// watermark: the highest offset below which everything is done. It is what
// makes commits at-least-once with workers that finish out of order.
//
// Each partition's bookkeeping belongs to an epoch. When the partition is
// revoked (transport.Subscription.OnRevoked, or a commit that reports it no
// longer assigned), its epoch ends: records of the old epoch still queued are
// not started, and those still running neither move a watermark nor commit
// one, so a partition that comes back later is never committed backwards.
type tracker struct {
	mu    sync.Mutex
	parts map[transport.TopicPartition]*partState
	epoch uint64 // the last epoch handed out
	// revocations counts revoke calls; revokedAt[tp] is the count at tp's
	// last revocation. A record polled before that (see add) is stale.
	revocations uint64
	revokedAt   map[transport.TopicPartition]uint64
	// pending counts the records handled (completed) in the current
	// epochs and not yet below a committed watermark: what a crash now
	// would deliver again. Written under mu, read without it.
	pending atomic.Int64
}

// partState is one partition's bookkeeping in one epoch.
type partState struct {
	epoch uint64
	offs  []int64 // offsets handed out and not yet below the mark
	done  []bool  // done[i]: offs[i] finished
	head  int
	mark  int64 // last offset of the done prefix; -1 before any
	// floor is the lowest offset tracked in the epoch (MaxInt64 before
	// any): an offset at or below mark and not below floor was handled in
	// the epoch; one below floor never was (see add).
	floor     int64
	committed int64 // last mark committed; -1 before any
	// completed counts the records completed in the epoch, passed those
	// of them that went below mark, and committedPassed what passed was
	// when the mark last committed was read: completed - committedPassed
	// of the epoch's records are handled and not committed (see
	// tracker.pending).
	completed, passed, committedPassed int64
	// headWaited is set when a worker held back (serveRun.awaitCommit)
	// waited a whole holdGrace for the partition's lowest live record
	// (offs[head]) with records done above it: a long handler, which holds
	// nobody from then on. A new lowest record clears it.
	headWaited bool
	// heldOff is the lowest live record last seen holding records done
	// above it by tracker.holding, heldSince when it was first seen so,
	// heldTold whether it was reported, heldBeyond whether it was
	// reported holding back the dedup window's size.
	heldOff    int64
	heldSince  time.Time
	heldTold   bool
	heldBeyond bool
	// ended is set (under tracker.mu) when the epoch ends: the state is
	// then no longer the partition's. Read without the lock by current.
	ended atomic.Bool
}

// ticket is a record handed to a worker: the epoch it belongs to.
type ticket struct {
	m     transport.Message
	epoch uint64
	ps    *partState // its epoch's bookkeeping, nil for none
	first bool       // the first record of its partition's epoch (see serveRun.pollLoop)
	// takeover: no record; the worker that takes it runs the poll loop
	// (see serveRun.pollLoop).
	takeover bool
}

func newTracker() *tracker {
	return &tracker{parts: make(map[transport.TopicPartition]*partState), revokedAt: make(map[transport.TopicPartition]uint64)}
}

// stateLocked returns tp's bookkeeping, and whether this call began it (a
// partition newly assigned to the member, or seen for the first time).
func (t *tracker) stateLocked(tp transport.TopicPartition) (*partState, bool) {
	if ps := t.parts[tp]; ps != nil {
		return ps, false
	}
	t.epoch++
	ps := &partState{epoch: t.epoch, mark: -1, committed: -1, floor: math.MaxInt64}
	t.parts[tp] = ps
	return ps, true
}

// polled returns the revocation count, to be taken as soon as a Poll
// returns and passed to add with the records it returned.
func (t *tracker) polled() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.revocations
}

// add tracks m as in flight and returns its ticket. polled is the count
// polled returned after the Poll that returned m.
//
// It reports false, and m must not be dispatched, when m's partition was
// revoked after that Poll returned (m is stale: the partition's next owner
// reads it again), and when m's offset is in flight already (delivered
// again while its first delivery is being handled: its completion would
// mark the shared slot done and let the watermark pass work still running).
// A revocation during the Poll cannot be told from one before it, when the
// partition may have come back: such records are taken.
func (t *tracker) add(m *transport.Message, polled uint64) (ticket, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := transport.TopicPartition{Topic: m.Topic, Partition: m.Partition}
	if at, ok := t.revokedAt[tp]; ok && at > polled {
		return ticket{}, false
	}
	ps, first := t.stateLocked(tp)
	tk := ticket{m: *m, epoch: ps.epoch, ps: ps, first: first}
	if m.Offset <= ps.mark && m.Offset >= ps.floor {
		// Delivered again after it was handled: dedup answers it, and the
		// watermark stays.
		return tk, true
	}
	if m.Offset <= ps.mark {
		// Below every offset the epoch tracked, so never handled in it:
		// the partition is read again from an earlier offset without a
		// revocation having ended the epoch (it was revoked during a Poll
		// whose records then began this epoch, and came back later). It
		// may never have finished: it is tracked, first of the live ones,
		// and the mark restarts below it (what it commits is not below
		// the group's offset, from which the partition is read again).
		// TestBreak8StaleEpochDoesNotPassRedeliveryBelowIt.
		ps.floor, ps.mark = m.Offset, m.Offset-1
		ps.headWaited = false
		ps.offs = slices.Insert(ps.offs, ps.head, m.Offset)
		ps.done = slices.Insert(ps.done, ps.head, false)
		return tk, true
	}
	ps.floor = min(ps.floor, m.Offset)
	n := len(ps.offs)
	if n == ps.head || m.Offset > ps.offs[n-1] {
		if n == ps.head {
			ps.headWaited = false
		}
		ps.offs = append(ps.offs, m.Offset)
		ps.done = append(ps.done, false)
		return tk, true
	}
	// Out of order (a redelivery from an earlier offset, or a transport
	// that reorders): insert in place, once.
	live := ps.offs[ps.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i] >= m.Offset })
	if live[i] == m.Offset {
		return tk, ps.done[ps.head+i] // a live copy is not dispatched twice
	}
	if i == 0 {
		ps.headWaited = false
	}
	i += ps.head
	ps.offs = slices.Insert(ps.offs, i, m.Offset)
	ps.done = slices.Insert(ps.done, i, false)
	return tk, true
}

// current reports whether tk's partition has not been revoked since tk was
// handed out. It takes no lock: a revocation right after it is as one
// right after a locked check would be.
func (t *tracker) current(tk *ticket) bool {
	return tk.ps != nil && !tk.ps.ended.Load()
}

// complete marks tk done and reports whether a watermark moved. A ticket
// of an ended epoch changes nothing.
func (t *tracker) complete(tk *ticket) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := tk.ps // the partition's state while its epoch lasts (see revoke)
	if ps == nil || ps.ended.Load() {
		return false
	}
	live := ps.offs[ps.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i] >= tk.m.Offset })
	if i == len(live) || live[i] != tk.m.Offset || ps.done[ps.head+i] {
		// Not live, or done already: a copy delivered again while it
		// waits for the watermark (see add) is the same record, counted
		// once (TestBreak11LiveDoneCopyCountsOnce).
		return false
	}
	ps.done[ps.head+i] = true
	ps.completed++
	t.pending.Add(1)
	moved := false
	for ps.head < len(ps.offs) && ps.done[ps.head] {
		ps.mark = ps.offs[ps.head]
		ps.head++
		ps.passed++
		moved = true
	}
	if moved {
		ps.headWaited = false
	}
	if ps.head == len(ps.offs) {
		ps.offs, ps.done, ps.head = ps.offs[:0], ps.done[:0], 0
	} else if ps.head > 1024 && ps.head > len(ps.offs)/2 {
		n := copy(ps.offs, ps.offs[ps.head:])
		copy(ps.done, ps.done[ps.head:])
		ps.offs, ps.done, ps.head = ps.offs[:n], ps.done[:n], 0
	}
	return moved
}

// revoke ends the epoch of each partition named: its bookkeeping is
// dropped, and the tickets handed out for it are no longer current.
func (t *tracker) revoke(tps []transport.TopicPartition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.revocations++
	for _, tp := range tps {
		if ps := t.parts[tp]; ps != nil {
			ps.ended.Store(true)
			// What it handled and did not commit is the next owner's
			// to deliver again (the dedup window answers it): none of
			// it can be committed here any more.
			t.pending.Add(-(ps.completed - ps.committedPassed))
		}
		delete(t.parts, tp)
		t.revokedAt[tp] = t.revocations
	}
}

// mark is a watermark to commit: one record per partition, whose offset is
// the watermark, and the epoch it belongs to.
type mark struct {
	m     transport.Message
	epoch uint64
	// passed is the partition's passed count when the mark was read: the
	// records its commit commits, counted since the epoch began.
	passed int64
}

// uncommitted returns a mark for each partition whose watermark moved
// past its last commit. They stay uncommitted until committed is told.
func (t *tracker) uncommitted() []mark { return t.uncommittedInto(nil) }

// uncommittedInto is uncommitted, appending to dst[:0].
func (t *tracker) uncommittedInto(dst []mark) []mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := dst[:0]
	for tp, ps := range t.parts {
		if ps.mark > ps.committed {
			out = append(out, mark{m: transport.Message{Topic: tp.Topic, Partition: tp.Partition, Offset: ps.mark}, epoch: ps.epoch, passed: ps.passed})
		}
	}
	return out
}

// holdState reports whether some watermark moved past its last commit
// (committable), and whether some partition has records done above its
// lowest live record that no held worker has waited a whole holdGrace for
// yet (blocked: that record may end soon, and the watermark then passes
// them).
func (t *tracker) holdState() (committable, blocked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ps := range t.parts {
		if ps.mark > ps.committed {
			committable = true
		}
		if !ps.headWaited && ps.doneAboveHead() {
			blocked = true
		}
	}
	return committable, blocked
}

// headsWaited records that a held worker waited a whole holdGrace for the
// lowest live record of every partition blocked now (see holdState): they
// are long handlers, and hold nobody until the next lowest record.
func (t *tracker) headsWaited() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ps := range t.parts {
		if ps.doneAboveHead() {
			ps.headWaited = true
		}
	}
}

// doneAboveHead reports whether records are done above the lowest live
// one, which still runs: the watermark waits for it. Called with
// tracker.mu held.
func (ps *partState) doneAboveHead() bool {
	return ps.head < len(ps.offs) && ps.completed > ps.passed
}

// committed records that mk was committed.
func (t *tracker) committed(mk *mark) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.parts[transport.TopicPartition{Topic: mk.m.Topic, Partition: mk.m.Partition}]
	if ps != nil && ps.epoch == mk.epoch && mk.m.Offset > ps.committed {
		ps.committed = mk.m.Offset
		if mk.passed > ps.committedPassed {
			t.pending.Add(-(mk.passed - ps.committedPassed))
			ps.committedPassed = mk.passed
		}
	}
}

// refused records that the transport refused mk's commit as not assigned:
// the partition moved to another member, or moved away and came back (a
// commit from before that is refused so that the group's offset never goes
// back). The bookkeeping stays: records polled since belong to the new
// assignment and are still running, so the watermark must keep holding at
// them, and a later mark above the refused one may commit. Only mk is given
// up. (A transport that reports revocations ends the epoch by revoke.)
func (t *tracker) refused(mk *mark) {
	t.committed(mk)
}

// heldBack is a partition whose commits wait for a record still running:
// the records handled after it are not committed until it ends.
type heldBack struct {
	tp      transport.TopicPartition
	offset  int64         // the record still running
	waiting int64         // records handled after it, not committed
	held    time.Duration // how long it was seen holding them, at least
	beyond  bool          // waiting reached the dedup window's size
}

// holding looks at each partition whose lowest live record holds records
// done above it: it notes when each such record was first seen holding
// them, and returns it once it was seen so for at least after, and once
// more if it then holds back window records or more (window 0: no
// window).
func (t *tracker) holding(now time.Time, after time.Duration, window int64) []heldBack {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []heldBack
	for tp, ps := range t.parts {
		if !ps.doneAboveHead() {
			continue
		}
		if off := ps.offs[ps.head]; ps.heldSince.IsZero() || ps.heldOff != off {
			ps.heldOff, ps.heldSince, ps.heldTold, ps.heldBeyond = off, now, false, false
			continue
		}
		held := now.Sub(ps.heldSince)
		if held < after {
			continue
		}
		waiting := ps.completed - ps.passed
		beyond := window > 0 && waiting >= window
		if !ps.heldTold || (beyond && !ps.heldBeyond) {
			ps.heldTold, ps.heldBeyond = true, beyond
			out = append(out, heldBack{tp: tp, offset: ps.heldOff, waiting: waiting, held: held, beyond: beyond})
		}
	}
	return out
}
