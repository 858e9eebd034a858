package rpc

import (
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Markers carry the broker's timestamps. With the broker's clock an hour
// behind this machine's (the skew the dedup reader measured at catch-up),
// a marker written a minute ago is still in a 10-minute window; without
// the skew it would look an hour old and be dropped. (Issue 13, "also
// seen": a clock skew larger than the window's age discarded every marker.)
func TestMarkersAgedOnTheBrokersClock(t *testing.T) {
	now := time.Now()
	marker := func(id string) *transport.Message {
		m := markerFor("g.handled", "other-instance", id, nil)
		m.Time = now.Add(-time.Hour - time.Minute) // broker clock: an hour behind, a minute ago
		return &m
	}
	w := newDedupWindow(100, 10*time.Minute)
	w.learnMarker(marker("a"), now)
	assert.False(t, w.has("a"), "without the skew the marker looks an hour old")

	w = newDedupWindow(100, 10*time.Minute)
	w.skew.Store(int64(-time.Hour))
	w.learnMarker(marker("b"), now)
	assert.True(t, w.has("b"), "on the broker's clock the marker is a minute old")
}

// A reply over maxMarkerReply is left out of its marker, which then stays
// small; a smaller one travels in it and is sent again from it.
func TestMarkerCarriesOnlySmallReplies(t *testing.T) {
	small := &transport.Message{Topic: "c.replies", Key: "id", Value: []byte(`{"ok":true}`)}
	m := markerFor("g.handled", "me", "id", small)
	e, ok := entryFromMarker(&m)
	assert.True(t, ok)
	if assert.NotNil(t, e.reply.Load()) {
		assert.Equal(t, small.Value, e.reply.Load().Value)
	}
	big := &transport.Message{Topic: "c.replies", Key: "id", Value: make([]byte, maxMarkerReply+1)}
	m = markerFor("g.handled", "me", "id", big)
	assert.Empty(t, m.Value)
	assert.Less(t, messageSize(&m), 200, "a marker without its reply is small")
	e, ok = entryFromMarker(&m)
	assert.True(t, ok)
	assert.Nil(t, e.reply.Load(), "the reply is not sent again by another instance")
}

// markerFor appends the marker's headers in the reply's array when it has
// room for them (3, or 4 for a reply to a pinned partition), and copies
// them otherwise; the reply's own headers never change.
func TestMarkerForSharesRoomOnly(t *testing.T) {
	reply := func(n, room int, pinned bool) *transport.Message {
		hs := make([]transport.Header, n, n+room)
		for i := range hs {
			hs[i] = transport.Header{Key: "h" + strconv.Itoa(i), Value: "v"}
		}
		return &transport.Message{Topic: "replies", Partition: 2, ManualPartition: pinned, Key: "id", Value: []byte(`1`), Headers: hs}
	}
	for _, tc := range []struct {
		name         string
		n, room      int
		pinned, same bool
	}{
		{"unpinned with room for 3", 9, 3, false, true},
		{"pinned with room for 3", 9, 3, true, false},
		{"pinned with room for 4", 8, 4, true, true},
		{"unpinned without room", 6, 2, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reply(tc.n, tc.room, tc.pinned)
			before := slices.Clone(r.Headers)
			m := markerFor("g.handled", "me", "id", r)
			require.Equal(t, before, r.Headers, "the reply's headers are its own")
			require.Equal(t, before, m.Headers[:tc.n], "the marker carries them")
			require.Equal(t, tc.same, &m.Headers[0] == &r.Headers[0], "shares the reply's array")
			e, ok := entryFromMarker(&m)
			require.True(t, ok)
			got := e.reply.Load()
			require.Equal(t, tc.pinned, got.ManualPartition)
			require.Len(t, got.Headers, tc.n)
		})
	}
}

// finish records an entry without dropping the oldest (that waits for
// trim, which settle calls after the reply is produced); trim then brings
// the window back to its size, oldest first.
func TestDedupWindowTrimsAfterFinish(t *testing.T) {
	w := newDedupWindow(3, time.Hour)
	now := time.Now()
	for i := range 5 {
		id := strconv.Itoa(i)
		state, _ := w.begin(id, now, waiter{})
		require.Equal(t, dedupNew, state)
		w.finish(id, &handledEntry{id: id}, now, nil)
		assert.True(t, w.has(id), "an entry is known as soon as it is finished")
		w.trim()
	}
	assert.Len(t, w.done, 3)
	for i, want := range []bool{false, false, true, true, true} {
		assert.Equal(t, want, w.has(strconv.Itoa(i)), "entry %d", i)
	}
	w.finish("late", &handledEntry{id: "late"}, now, nil)
	assert.Len(t, w.done, 4, "one over the size until trim")
	w.trim()
	assert.Len(t, w.done, 3)
	assert.False(t, w.has("2"))
}

// The window keys its entries by their id's hash. Two ids with one hash
// (forced here: an entry for "a" stored under "b"'s key) are told apart by
// the id the entry holds: "b" is new, not taken for "a"; finishing "b"
// replaces "a", which is forgotten early (it may run again, at least once),
// and dropping "a"'s slot later leaves "b" in place.
func TestDedupWindowHashCollision(t *testing.T) {
	w := newDedupWindow(10, time.Hour)
	now := time.Now()
	a := &handledEntry{id: "a"}
	w.mu.Lock()
	w.done[w.key("b")] = a
	w.fifo = append(w.fifo, fifoSlot{e: a, key: w.key("b"), at: now})
	w.mu.Unlock()
	assert.False(t, w.has("b"))
	state, e := w.begin("b", now, waiter{})
	require.Equal(t, dedupNew, state, "a colliding entry is not b's")
	assert.Nil(t, e)
	b := &handledEntry{id: "b"}
	w.finish("b", b, now, nil)
	assert.True(t, w.has("b"))
	state, e = w.begin("b", now, waiter{})
	assert.Equal(t, dedupDone, state)
	assert.Same(t, b, e)
	w.mu.Lock()
	w.drop() // a's slot: b stays
	w.mu.Unlock()
	assert.True(t, w.has("b"))
	assert.False(t, w.has("a"))
}

// The entry replyOutcome makes holds its reply's headers and, after them,
// room for the marker's, sized to them (newReplyEntry, replyRoom): the
// marker appends there for every reply (success or error, with a trace
// context or not, to a pinned partition or not), which keeps its headers
// as they were, and the entry learned from the marker gives them back. A
// reply that gets no marker (the window is not persisted) takes the
// smallest entry.
func TestEntryRoomForReplyAndMarkerHeaders(t *testing.T) {
	oops := Errorf(CodeNotFound, "no such thing")
	for _, tc := range []struct {
		name      string
		server    string
		trace     string
		part      int32
		herr      *Error
		persisted bool
		size      uintptr // of the entry allocated
	}{
		{"success", "svc", "", -1, nil, true, unsafe.Sizeof(entryWith9{})},
		{"success unnamed", "", "", -1, nil, true, unsafe.Sizeof(entryWith9{})},
		{"success pinned", "svc", "", 3, nil, true, unsafe.Sizeof(entryWith11{})},
		{"success traced", "svc", "00-a-b-01", -1, nil, true, unsafe.Sizeof(entryWith11{})},
		{"success traced pinned", "svc", "00-a-b-01", 3, nil, true, unsafe.Sizeof(entryWith11{})},
		{"success not persisted", "svc", "", -1, nil, false, unsafe.Sizeof(entryWith6{})},
		{"success traced not persisted", "svc", "00-a-b-01", 3, nil, false, unsafe.Sizeof(entryWith9{})},
		{"error", "svc", "", -1, oops, true, unsafe.Sizeof(entryWith11{})},
		{"error pinned", "svc", "", 3, oops, true, unsafe.Sizeof(entryWithAll{})},
		{"error traced", "svc", "00-a-b-01", -1, oops, true, unsafe.Sizeof(entryWithAll{})},
		{"error traced pinned", "svc", "00-a-b-01", 3, oops, true, unsafe.Sizeof(entryWithAll{})},
		{"error not persisted", "svc", "", -1, oops, false, unsafe.Sizeof(entryWith9{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: serverConfig{name: tc.server}}
			if tc.persisted {
				s.cfg.dedupTopic = "g.handled"
			}
			r := &serveRun{s: s, dedup: newDedupWindow(10, time.Hour)}
			d := &delivery{to: replyAddr{id: "req-1", replyTo: "replies", traceparent: tc.trace, replyPartition: tc.part}}
			room := r.replyRoom(d, tc.herr)
			e, hb := newReplyEntry(room)
			require.Equal(t, tc.size, entrySize(e, cap(hb)), "the smallest entry with room for %d headers", room)
			reply := s.replyMessageIn(hb, &d.to, KindReply, []byte(`{"ok":true}`), tc.herr)
			require.LessOrEqual(t, len(reply.Headers), 9)
			require.Equal(t, &hb[:1][0], &reply.Headers[0], "the reply's headers are in the entry")
			before := slices.Clone(reply.Headers)
			if !tc.persisted {
				require.False(t, r.persists(d))
				return
			}
			require.True(t, r.persists(d))
			m := markerFor("g.handled", "me", "req-1", &reply)
			require.Equal(t, before, reply.Headers, "the reply's headers are its own")
			require.Equal(t, before, m.Headers[:len(before)], "the marker carries them")
			require.Equal(t, &hb[:1][0], &m.Headers[0], "in the entry's room, not a copy")
			got, ok := entryFromMarker(&m)
			require.True(t, ok)
			learned := got.reply.Load()
			require.NotNil(t, learned)
			assert.Equal(t, before, learned.Headers)
			assert.Equal(t, tc.part >= 0, learned.ManualPartition)
			if tc.trace != "" {
				tp, _ := learned.Header(HeaderTraceparent)
				assert.Equal(t, tc.trace, tp)
			}
		})
	}
}

// entrySize is the size of the entry newReplyEntry made with room for n
// headers.
func entrySize(_ *handledEntry, n int) uintptr {
	return unsafe.Sizeof(handledEntry{}) + uintptr(n)*unsafe.Sizeof(transport.Header{})
}

// The objects the pipeline allocates for every request stay within the
// size classes the cuts of issue 11 brought them to: the delivery (with
// its handler context) and the common reply's entry at most 448 bytes, a
// traced or pinned reply's at most 512 (no malloc header), none over 576.
func TestPipelineAllocationSizes(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(delivery{}), uintptr(448))
	assert.LessOrEqual(t, unsafe.Sizeof(entryWith9{}), uintptr(448))
	assert.LessOrEqual(t, unsafe.Sizeof(entryWith6{}), uintptr(352))
	assert.LessOrEqual(t, unsafe.Sizeof(entryWith11{}), uintptr(512))
	assert.LessOrEqual(t, unsafe.Sizeof(entryWithAll{}), uintptr(576))
}
