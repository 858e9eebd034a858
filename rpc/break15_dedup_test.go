package rpc

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The break-it pass on the dedup window keyed by its ids' hashes (a4ff694):
// against a window keyed by the ids themselves (the one before, written
// out here as the reference), every operation in random sequences answers
// the same; with collisions forced (an entry planted under another id's
// key), no id is ever taken for another, and the size bound holds.

// b15RefWindow is the window keyed by id, as it was before a4ff694.
type b15RefWindow struct {
	size int
	age  time.Duration
	done map[string]*handledEntry
	fifo []fifoSlot
	head int
}

func (r *b15RefWindow) evict(now time.Time) {
	for r.head < len(r.fifo) && now.Sub(r.fifo[r.head].at) > r.age {
		r.drop()
	}
}

func (r *b15RefWindow) drop() {
	e := r.fifo[r.head].e
	r.head++
	if cur, ok := r.done[e.id]; ok && cur == e {
		delete(r.done, e.id)
	}
}

func (r *b15RefWindow) insert(e *handledEntry, at time.Time) {
	r.done[e.id] = e
	r.fifo = append(r.fifo, fifoSlot{e: e, at: at})
}

func (r *b15RefWindow) trim() {
	for len(r.done) > r.size && r.head < len(r.fifo) {
		r.drop()
	}
}

func (r *b15RefWindow) learn(e *handledEntry, at, now time.Time) {
	if now.Sub(at) > r.age {
		return
	}
	if _, ok := r.done[e.id]; !ok {
		r.insert(e, at)
		r.trim()
	}
}

func TestBreak15DedupWindowSameAsKeyedByID(t *testing.T) {
	for seed := range uint64(16) {
		rng := rand.New(rand.NewPCG(seed, 15))
		size, age := 1+rng.IntN(12), time.Duration(1+rng.IntN(50))*time.Millisecond
		w := newDedupWindow(size, age)
		ref := &b15RefWindow{size: size, age: age, done: map[string]*handledEntry{}}
		inflight := map[string]bool{}
		now := time.Unix(1_700_000_000, 0)
		ids := make([]string, 1+rng.IntN(40))
		for i := range ids {
			ids[i] = "req-" + strconv.Itoa(i)
		}
		for step := range 1500 {
			now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
			id := ids[rng.IntN(len(ids))]
			switch op := rng.IntN(10); {
			case op < 4: // a delivery: begin, and finish when new (handled or cut short)
				ref.evict(now)
				state, e := w.begin(id, now, waiter{})
				switch re, done := ref.done[id]; {
				case done:
					require.Equal(t, dedupDone, state, "seed %d step %d: %s", seed, step, id)
					require.Same(t, re, e)
				case inflight[id]:
					require.Equal(t, dedupInFlight, state, "seed %d step %d: %s", seed, step, id)
				default:
					require.Equal(t, dedupNew, state, "seed %d step %d: %s", seed, step, id)
					inflight[id] = true
				}
			case op < 7: // its run ends
				if !inflight[id] {
					continue
				}
				delete(inflight, id)
				var e *handledEntry
				if rng.IntN(5) > 0 {
					e = &handledEntry{id: id}
				}
				w.finish(id, e, now, nil)
				if e != nil {
					ref.insert(e, now)
				}
				if rng.IntN(2) == 0 {
					w.trim()
					ref.trim()
				}
			case op < 9: // a marker from another instance, written a while ago
				at := now.Add(-time.Duration(rng.IntN(int(age/time.Millisecond)+5)) * time.Millisecond)
				e := &handledEntry{id: id}
				w.learn(e, at, now)
				ref.learn(e, at, now)
			default: // the settle stage's trim
				w.trim()
				ref.trim()
			}
			w.mu.Lock()
			require.Equal(t, len(ref.done), len(w.done), "seed %d step %d", seed, step)
			require.Equal(t, len(ref.fifo)-ref.head, len(w.fifo)-w.head, "seed %d step %d", seed, step)
			w.mu.Unlock()
			for _, x := range ids {
				_, want := ref.done[x]
				require.Equal(t, want, w.has(x), "seed %d step %d: has(%s)", seed, step, x)
			}
		}
		w.trim()
		ref.trim()
		require.LessOrEqual(t, len(w.done), size)
	}
}

// Collisions forced: before operations on an id, an entry for another id
// is planted under its key (as a 64-bit collision would place it). Whatever
// happens, begin never answers "done" with another id's entry, has never
// says an id is done that was neither finished nor learned, and after trim
// the window holds at most size entries.
func TestBreak15DedupWindowForcedCollisions(t *testing.T) {
	for seed := range uint64(16) {
		rng := rand.New(rand.NewPCG(seed, 51))
		size, age := 1+rng.IntN(8), time.Duration(5+rng.IntN(30))*time.Millisecond
		w := newDedupWindow(size, age)
		now := time.Unix(1_700_000_000, 0)
		handled := map[string]bool{} // finished or learned at some point
		inflight := map[string]bool{}
		ids := make([]string, 2+rng.IntN(20))
		for i := range ids {
			ids[i] = "c-" + strconv.Itoa(i)
		}
		for step := range 1500 {
			now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
			id := ids[rng.IntN(len(ids))]
			if rng.IntN(4) == 0 { // plant another id's entry under id's key
				other := ids[rng.IntN(len(ids))]
				if other != id {
					handled[other] = true
					e := &handledEntry{id: other}
					w.mu.Lock()
					k := w.key(id)
					w.done[k] = e
					w.fifo = append(w.fifo, fifoSlot{e: e, key: k, at: now})
					if len(w.done) > w.size {
						w.over.Store(true)
					}
					w.mu.Unlock()
				}
			}
			switch op := rng.IntN(4); op {
			case 0, 1:
				state, e := w.begin(id, now, waiter{})
				switch state {
				case dedupDone:
					require.Equal(t, id, e.id, "seed %d step %d: %s taken for %s", seed, step, id, e.id)
					require.True(t, handled[id])
				case dedupNew:
					inflight[id] = true
				case dedupInFlight:
					require.True(t, inflight[id], "seed %d step %d: %s in flight", seed, step, id)
				}
			case 2:
				if inflight[id] {
					delete(inflight, id)
					handled[id] = true
					w.finish(id, &handledEntry{id: id}, now, nil)
				}
			case 3:
				handled[id] = true
				w.learn(&handledEntry{id: id}, now, now)
			}
			w.trim()
			w.mu.Lock()
			require.LessOrEqual(t, len(w.done), w.size, "seed %d step %d", seed, step)
			w.mu.Unlock()
			for _, x := range ids {
				if w.has(x) {
					require.True(t, handled[x], "seed %d step %d: has(%s) but never handled", seed, step, x)
				}
			}
		}
	}
}
