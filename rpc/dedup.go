package rpc

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Headers of the records in a server's dedup topic ("<group>.handled").
// Each record says that the request named by its key was handled; its value
// and rpc-* headers are the reply that was sent, re-sent if the request is
// delivered again.
const (
	headerDedupOf              = "rpc-dedup-of"
	headerDedupReplyTo         = "rpc-dedup-reply-to"
	headerDedupReplyPart       = "rpc-dedup-reply-partition"
	headerDedupSentinel        = "rpc-dedup-sentinel"
	headerDedupBy              = "rpc-dedup-by"
	headerDedupOmitted         = "rpc-dedup-reply-omitted"
	dedupPartition       int32 = 0 // one ordered log: a sentinel proves catch-up
)

// maxMarkerReply is the largest reply (value and headers) a marker carries.
// A larger reply is left out of its marker, so that a marker is never much
// larger than maxMarkerReply: the dedup topic's retention then covers the
// window (10,000 markers of at most about 1.5 KiB is 15 MiB, under the
// embedded broker's default of 64 MiB per partition), and a reply that fits
// the transport is never refused because its marker does not. A request
// whose marker has no reply is not run again by another instance, but its
// reply is not sent again either.
const maxMarkerReply = 1024

// dedupWindow remembers the ids of requests handled recently (bounded by
// count and age) with the reply each got, and the ids in flight.
type dedupWindow struct {
	size      int
	age       time.Duration
	self      string       // written in this window's markers, which it skips on reading
	skew      atomic.Int64 // the broker's clock minus this machine's, in ns
	skewKnown atomic.Bool  // skew was measured

	// over says done holds more than size entries: trim drops the
	// oldest. Set under mu, read without it by trim's fast path.
	over atomic.Bool

	// done holds the entries by their id's hash (see key), each entry
	// holding its id: a lookup compares the ids only on a hit. Two ids
	// with one hash cost at most an entry forgotten early (the later one
	// replaces the earlier), never a request taken for another.
	//
	// Hashes rather than the ids themselves, because the window is large
	// (10,000 by default) and its oldest entries are long out of the cache:
	// dropping the oldest then probes the map by the hash its fifoSlot
	// holds, rather than loading the entry and then its id's bytes to hash
	// them, and a lookup of a new id (the common case: a miss) compares no
	// strings.
	mu       sync.Mutex
	seed     maphash.Seed
	done     map[uint64]*handledEntry
	fifo     []fifoSlot // insertion order, for eviction
	head     int
	inflight map[string]flight // id → its first delivery's run, and copies waiting for it

	// learned counts the entries learned from other instances' markers:
	// they take room in the window as this server's own do (see
	// serveRun.othersHandled).
	learned atomic.Int64
}

// fifoSlot is an entry of the window in insertion order, with its time and
// its key in done: begin's check of the oldest entry's age, and drop, then
// read the slot, next to the ones read before, rather than the entry, long
// out of the cache.
type fifoSlot struct {
	e   *handledEntry
	key uint64
	at  time.Time // when e was handled (or, learned from a marker, written)
}

// key is id's key in done.
func (w *dedupWindow) key(id string) uint64 { return maphash.String(w.seed, id) }

// lookup returns the entry for id, if done holds it. Called with mu held.
func (w *dedupWindow) lookup(id string) (*handledEntry, bool) {
	e, ok := w.done[w.key(id)]
	if !ok || e.id != id {
		return nil, false
	}
	return e, true
}

// handledEntry is a request handled within the window. reply is nil when
// nothing was to be sent back (or the marker it was learned from had no
// reply); it is replaced, never changed, while the entry is visible.
//
// Its time is not part of it: the window keeps it in the entry's fifoSlot,
// the one place it is read (and the entry, with its reply's headers, fits a
// smaller size class; see newReplyEntry).
type handledEntry struct {
	id    string
	reply atomic.Pointer[transport.Message]
	// sent is where reply first points, for an entry settle made: the
	// entry and its reply in one allocation. It is not changed after the
	// entry is visible (a replacement reply is a new Message).
	sent transport.Message
}

// A handledEntry that replyOutcome makes is allocated with its reply's
// headers and, after them, room for its marker's (see markerFor): they live
// exactly as long, in the window, as each other. It comes in four sizes,
// the smallest that holds them all (see newReplyEntry): the common reply
// (six headers, and a marker's three) takes a 448-byte size class, a
// reply not persisted (no marker) 352, one with a trace context or to a
// pinned partition 512 (the largest class without a malloc header), and an
// error reply with a trace context 576, so that no marker has to copy its
// reply's headers.
type (
	entryWith6 struct {
		handledEntry
		hdrs [6]transport.Header
	}
	entryWith9 struct {
		handledEntry
		hdrs [9]transport.Header
	}
	entryWith11 struct {
		handledEntry
		hdrs [11]transport.Header
	}
	entryWithAll struct {
		handledEntry
		hdrs [replyHeaders]transport.Header
	}
)

// newReplyEntry returns a new handledEntry and, in the same allocation, an
// empty header array with room for n headers (or replyHeaders, the most a
// reply and its marker have, when n is more).
func newReplyEntry(n int) (*handledEntry, headerBuilder) {
	switch {
	case n <= 6:
		e := new(entryWith6)
		return &e.handledEntry, e.hdrs[:0]
	case n <= 9:
		e := new(entryWith9)
		return &e.handledEntry, e.hdrs[:0]
	case n <= 11:
		e := new(entryWith11)
		return &e.handledEntry, e.hdrs[:0]
	default:
		e := new(entryWithAll)
		return &e.handledEntry, e.hdrs[:0]
	}
}

func newDedupWindow(size int, age time.Duration) *dedupWindow {
	return &dedupWindow{size: size, age: age, self: uuid.NewString(), seed: maphash.MakeSeed(),
		done: make(map[uint64]*handledEntry), inflight: make(map[string]flight)}
}

type dedupState int

const (
	dedupNew dedupState = iota
	dedupInFlight
	dedupDone
)

// begin reports whether id is new (and then marks it in flight), in flight
// or already done, with the stored entry in the last case. A copy that
// finds id in flight is left to wait: cp joins the waiters that finish
// hands to the first delivery's settle stage.
func (w *dedupWindow) begin(id string, now time.Time, cp waiter) (dedupState, *handledEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict(now)
	if e, ok := w.lookup(id); ok {
		return dedupDone, e
	}
	if fl, ok := w.inflight[id]; ok {
		fl.waiters = append(fl.waiters, cp)
		w.inflight[id] = fl
		return dedupInFlight, nil
	}
	w.inflight[id] = flight{owner: cp.run} // by value: no allocation per request
	return dedupNew, nil
}

// flight is a request in flight: the run handling its first delivery, and
// the copies that wait for it.
type flight struct {
	owner   *serveRun
	waiters []waiter
}

// finish records id as done at at; e nil means it was not (the handler was cut
// short and the request may run again). It returns the copies that waited
// for id, when owner still holds id in flight (see abandon). The window
// may then hold one entry over its size until trim: settle trims after it
// has produced the reply, so that dropping the oldest entry (a map entry
// long out of the cache) is not on the way from request to reply.
func (w *dedupWindow) finish(id string, e *handledEntry, at time.Time, owner *serveRun) []waiter {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ws []waiter
	if fl, ok := w.inflight[id]; ok && fl.owner == owner {
		ws = fl.waiters
		delete(w.inflight, id)
	}
	if e != nil {
		w.insert(e, at)
	}
	return ws
}

// abandon forgets the requests owner holds in flight: its handlers were
// abandoned when its Serve returned, and a later Serve of the same Server
// must run their redeliveries instead of waiting for them.
func (w *dedupWindow) abandon(owner *serveRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, fl := range w.inflight {
		if fl.owner == owner {
			delete(w.inflight, id)
		}
	}
}

// waiter is a copy of a request delivered while its first delivery was in
// flight (a resend, or the same record again after its partition moved
// away and back). It is not run; its offset is done when the first
// delivery's is, and not before: the watermark must not pass a request
// still running in another epoch of the tracker, or in an earlier Serve.
type waiter struct {
	run *serveRun
	tk  ticket
}

// done marks the copy's offset done in the run it was delivered to.
func (cp *waiter) done() {
	if cp.run.track.complete(&cp.tk) {
		cp.run.signalCommit()
	}
}

// learnedCount is learned's count, 0 for a nil window.
func (w *dedupWindow) learnedCount() int64 {
	if w == nil {
		return 0
	}
	return w.learned.Load()
}

// has reports whether id is known as done.
func (w *dedupWindow) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.lookup(id)
	return ok
}

// learnMarker records the entry in a dedup-topic record unless its id is
// known already (as are this server's own markers, read back). The
// record's time is the broker's: it is moved to this machine's clock by the
// skew measured at catch-up, so that a clock skew between the two does not
// age every marker out (or keep them too long).
func (w *dedupWindow) learnMarker(m *transport.Message, now time.Time) {
	if by, _ := m.Header(headerDedupBy); by == w.self {
		return // our own: already in the window, no lock needed
	}
	id, ok := m.Header(headerDedupOf)
	if !ok || id == "" || w.has(id) {
		return
	}
	if e, ok := entryFromMarker(m); ok {
		w.learn(e, m.Time.Add(-time.Duration(w.skew.Load())), now)
	}
}

// learn records an entry read from the dedup topic, handled at at.
func (w *dedupWindow) learn(e *handledEntry, at, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(at) > w.age {
		return
	}
	if _, ok := w.done[w.key(e.id)]; !ok { // a colliding id is not learned: see done
		w.insert(e, at)
		w.trimLocked()
		w.learned.Add(1)
	}
}

// insert adds e, handled at at; the caller trims (see finish).
func (w *dedupWindow) insert(e *handledEntry, at time.Time) {
	k := w.key(e.id)
	w.done[k] = e
	w.fifo = append(w.fifo, fifoSlot{e: e, key: k, at: at})
	if len(w.done) > w.size {
		w.over.Store(true)
	}
}

// trim drops the oldest entries while the window holds more than its size.
func (w *dedupWindow) trim() {
	if !w.over.Load() {
		return
	}
	w.mu.Lock()
	w.trimLocked()
	w.mu.Unlock()
}

func (w *dedupWindow) trimLocked() {
	for len(w.done) > w.size && w.head < len(w.fifo) {
		w.drop()
	}
	w.over.Store(false)
}

func (w *dedupWindow) evict(now time.Time) {
	for w.head < len(w.fifo) && now.Sub(w.fifo[w.head].at) > w.age {
		w.drop()
	}
}

func (w *dedupWindow) drop() {
	slot := w.fifo[w.head]
	w.fifo[w.head] = fifoSlot{}
	w.head++
	if cur, ok := w.done[slot.key]; ok && cur == slot.e {
		delete(w.done, slot.key)
	}
	if w.head > 1024 && w.head > len(w.fifo)/2 {
		n := copy(w.fifo, w.fifo[w.head:])
		clear(w.fifo[n:])
		w.fifo, w.head = w.fifo[:n], 0
	}
}

// markerHeaders is the most headers markerFor adds to a reply's.
const markerHeaders = 4

// markerFor builds the dedup-topic record for a handled request: the
// reply goes in it when it is at most maxMarkerReply bytes. Its headers are
// the reply's followed by the dedup headers (readers look them up by key,
// not by position); when the reply's header slice has room after its end
// (replyMessage leaves some), they are appended there, sharing its array:
// the reply's own headers are not changed, so both records may be handed
// over to the transport together.
func markerFor(topic, by, id string, reply *transport.Message) transport.Message {
	m := transport.Message{Topic: topic, Partition: dedupPartition, ManualPartition: true, Key: id}
	size := 0
	if reply != nil {
		size = messageSize(reply)
	}
	switch {
	case reply == nil:
		m.Headers = []transport.Header{{Key: headerDedupBy, Value: by}, {Key: headerDedupOf, Value: id}}
	case size > maxMarkerReply:
		return markerOmitting(topic, by, id, size)
	default:
		m.Value = reply.Value
		n, need := len(reply.Headers), markerHeaders-1
		if reply.ManualPartition {
			need = markerHeaders
		}
		hs := reply.Headers[:n:n] // no room: append copies
		if cap(reply.Headers)-n >= need {
			hs = reply.Headers[: n : n+need]
		}
		hs = append(hs, transport.Header{Key: headerDedupBy, Value: by}, transport.Header{Key: headerDedupOf, Value: id},
			transport.Header{Key: headerDedupReplyTo, Value: reply.Topic})
		if reply.ManualPartition {
			hs = append(hs, transport.Header{Key: headerDedupReplyPart, Value: strconv.Itoa(int(reply.Partition))})
		}
		m.Headers = hs
	}
	return m
}

// markerOmitting is the dedup-topic record for a handled request whose
// reply, of size bytes, it leaves out.
func markerOmitting(topic, by, id string, size int) transport.Message {
	return transport.Message{Topic: topic, Partition: dedupPartition, ManualPartition: true, Key: id,
		Headers: []transport.Header{{Key: headerDedupBy, Value: by}, {Key: headerDedupOf, Value: id},
			{Key: headerDedupOmitted, Value: strconv.Itoa(size)}}}
}

// messageSize is a record's value and header bytes.
func messageSize(m *transport.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// entryFromMarker parses a dedup-topic record; ok is false for sentinels
// and foreign records. The entry's time is the record's (m.Time).
func entryFromMarker(m *transport.Message) (*handledEntry, bool) {
	id, ok := m.Header(headerDedupOf)
	if !ok || id == "" {
		return nil, false
	}
	e := &handledEntry{id: id}
	replyTo, _ := m.Header(headerDedupReplyTo)
	if replyTo == "" {
		return e, true
	}
	reply := &transport.Message{Topic: replyTo, Key: id, Value: m.Value}
	for _, h := range m.Headers {
		switch h.Key {
		case headerDedupOf, headerDedupReplyTo, headerDedupBy, headerDedupOmitted:
		case headerDedupReplyPart:
			if p, err := strconv.ParseInt(h.Value, 10, 32); err == nil && p >= 0 {
				reply.Partition, reply.ManualPartition = int32(p), true
			}
		default:
			reply.Headers = append(reply.Headers, h)
		}
	}
	e.reply.Store(reply)
	return e, true
}
