package memory

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/disklog"
	"github.com/kafkarpc/kafkarpc/transport"
)

// topic is a named set of partitions. Topics are never deleted and their
// partition count never changes, so pointers to them stay valid.
type topic struct {
	name  string
	parts []*partition
	rr    atomic.Uint32 // next partition for keyless records
}

func newTopic(name string, partitions int) *topic {
	t := &topic{name: name, parts: make([]*partition, partitions)}
	for i := range t.parts {
		t.parts[i] = &partition{topic: t, index: int32(i)}
	}
	return t
}

// partition is one append-only log.
//
// The retained records sit in chunks of chunkRecords: the record at offset
// base+i, for i < count, is in chunks[(head+i)/chunkRecords] at
// (head+i)%chunkRecords. A chunk is added when the last one is full and
// dropped when retention has dropped all of its records (the last one
// dropped is kept as a spare for the next append): a growing log never
// copies the records it holds, and a log that retention shrinks gives its
// memory back. Records are stored as complete transport.Messages (Topic,
// Partition, Offset and Time filled in), so a read is a copy. Their Value
// and Headers point into buffers the broker allocated at Produce and never
// changes.
type partition struct {
	topic *topic
	index int32

	// end is the next offset to be written. It is written under mu and
	// read without it to plan a Poll.
	end atomic.Int64

	mu        sync.Mutex
	chunks    []*chunk // the retained records, oldest first
	spare     *chunk   // the last chunk retention emptied, for reuse; nil if none
	head      int      // index in chunks[0] of the record at offset base
	count     int      // retained records
	base      int64    // the earliest retained offset
	bytes     int64    // size of the retained records, by recordSize
	lastMilli int64    // Time of the last appended record, in ms
	unordered bool     // some record's Time is before its predecessor's

	// watchers are signalled (non-blocking, cap 1 channels) after every
	// append: the wake channels of consumers owning the partition and of
	// blocked Fetches.
	watchers []chan struct{}

	// log is the partition's file log in a durable broker (nil in memory
	// only): append writes to it first, under mu. stopped is the broker's
	// closed flag, checked under mu so that no append writes once Close
	// has passed every partition's lock.
	log     *disklog.Log
	stopped *atomic.Bool
}

// chunkRecords is how many records a chunk holds: a partition with any
// record holds at least one chunk (about 9 KiB).
const chunkRecords = 64

// chunk is a block of a partition's log.
type chunk struct {
	recs [chunkRecords]transport.Message
	meta [chunkRecords]recMeta // what retention needs of each record
}

// at returns the i-th retained record (offset base+i) and its meta.
// Called with mu held.
func (p *partition) at(i int) (*transport.Message, *recMeta) {
	i += p.head
	c := p.chunks[i/chunkRecords]
	return &c.recs[i%chunkRecords], &c.meta[i%chunkRecords]
}

// recMeta is what retention needs of a stored record: when it was
// appended (unix ms, for the retention age) and its size (recordSize,
// kept so that dropping it does not walk its headers again).
type recMeta struct {
	added int64
	size  int64
}

// recordSize is the size a record counts for against WithMaxMessageBytes and
// WithRetention.
func recordSize(m *transport.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// fitBytes returns how many of msgs, one partition's records, fit in the
// per-partition byte cap and in *left, which it reduces. The first record
// always fits unless some record came before (more).
func (c *config) fitBytes(msgs []transport.Message, more bool, left *int) int {
	used := 0
	for i := range msgs {
		size := recordSize(&msgs[i])
		if (more || i > 0) && (used+size > c.partitionBytes || size > *left) {
			return i
		}
		used += size
		*left -= size
	}
	return len(msgs)
}

// append stores msgs, which are fully prepared except for Offset, sets their
// offsets, applies retention and wakes the watchers. In a durable broker it
// first writes them to the partition's log and returns the sequence number
// to pass to its Sync; if that fails, it stores nothing and returns the
// error.
func (p *partition) append(msgs []transport.Message, cfg *config, now time.Time) (int64, error) {
	p.mu.Lock()
	var seq int64
	if p.log != nil {
		if p.stopped.Load() {
			p.mu.Unlock()
			return 0, errBrokerClosed
		}
		next := p.base + int64(p.count)
		for i := range msgs {
			msgs[i].Offset = next + int64(i)
		}
		var err error
		if seq, err = p.log.Append(msgs, now); err != nil {
			p.mu.Unlock()
			return 0, fmt.Errorf("memory: produce to %q partition %d: %w", p.topic.name, p.index, err)
		}
	}
	p.store(msgs, now.UnixMilli())
	p.trim(cfg, now)
	if p.log != nil {
		p.log.DropBefore(p.base)
	}
	p.end.Store(p.base + int64(p.count))
	// The watchers are signalled after the lock is released (a wake-up
	// may cost a thread's wake-up, and other producers wait on the lock),
	// from a copy taken under it: a watcher registered before this append
	// is signalled, as it would be under the lock; one that unregistered
	// meanwhile gets a spurious signal, which every watcher tolerates (it
	// checks again what it waits for). Many watchers are signalled under
	// the lock, so that the copy needs no allocation.
	var wbuf [4]chan struct{}
	ws := wbuf[:0]
	if len(p.watchers) <= len(wbuf) {
		ws = append(ws, p.watchers...)
	} else {
		for _, w := range p.watchers {
			signal(w)
		}
	}
	p.mu.Unlock()
	for _, w := range ws {
		signal(w)
	}
	return seq, nil
}

// store puts msgs in the log, setting their offsets, as appended at
// addedMs. Called with mu held.
func (p *partition) store(msgs []transport.Message, addedMs int64) {
	off := p.base + int64(p.count)
	for i := range msgs {
		m := &msgs[i]
		m.Offset = off
		off++
		if ms := m.Time.UnixMilli(); ms < p.lastMilli {
			p.unordered = true
		} else {
			p.lastMilli = ms
		}
		size := int64(recordSize(m))
		p.bytes += size
		pos := p.head + p.count
		if pos/chunkRecords == len(p.chunks) {
			c := p.spare
			if c == nil {
				c = new(chunk)
			}
			p.spare = nil
			p.chunks = append(p.chunks, c)
		}
		c := p.chunks[pos/chunkRecords]
		c.recs[pos%chunkRecords] = *m
		c.meta[pos%chunkRecords] = recMeta{added: addedMs, size: size}
		p.count++
	}
}

// restore stores a batch read back from the partition's log at start-up,
// and applies retention as of now.
func (p *partition) restore(b disklog.Batch, cfg *config, now time.Time) {
	p.mu.Lock()
	if p.count == 0 {
		p.base = b.Base
	}
	p.store(b.Records, b.Appended.UnixMilli())
	p.trim(cfg, now)
	p.mu.Unlock()
}

// trim drops the oldest records while the log is over a retention limit
// (records, bytes, or the oldest record appended more than the retention
// age before now), keeping at least the newest record. Called with mu held.
func (p *partition) trim(cfg *config, now time.Time) {
	cutoff := now.Add(-cfg.retentionAge).UnixMilli()
	for p.count > 1 {
		c := p.chunks[0]
		if meta := &c.meta[p.head]; p.count <= cfg.retentionRecords && p.bytes <= cfg.retentionBytes && meta.added >= cutoff {
			break
		}
		p.bytes -= c.meta[p.head].size
		c.recs[p.head] = transport.Message{} // release the record's memory
		p.head++
		if p.head == chunkRecords { // the chunk is empty: the spare
			clear(p.chunks[:1])
			p.chunks = p.chunks[1:]
			p.spare, p.head = c, 0
		}
		p.count--
		p.base++
	}
}

// readLocked appends up to max records from offset from (clamped to the
// earliest retained one) to dst and returns dst and the offset after the
// last record read. Called with mu held.
func (p *partition) readLocked(dst []transport.Message, from int64, max int) ([]transport.Message, int64) {
	if from < p.base {
		from = p.base
	}
	n := int(min(p.base+int64(p.count)-from, int64(max)))
	if n <= 0 {
		return dst, from
	}
	for i, left := p.head+int(from-p.base), n; left > 0; {
		c, j := p.chunks[i/chunkRecords], i%chunkRecords
		k := min(left, chunkRecords-j)
		dst = append(dst, c.recs[j:j+k]...)
		i, left = i+k, left-k
	}
	return dst, from + int64(n)
}

// read is readLocked for callers without mu.
func (p *partition) read(dst []transport.Message, from int64, max int) ([]transport.Message, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readLocked(dst, from, max)
}

// available returns how many records exist from offset from on, clamped to
// the earliest retained one. Called with mu held.
func (p *partition) availableLocked(from int64) int64 {
	return p.base + int64(p.count) - max(from, p.base)
}

// offsets returns the earliest retained offset and the next offset to be
// written.
func (p *partition) offsets() (earliest, latest int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base, p.base + int64(p.count)
}

// offsetForTime returns the earliest offset whose record's Time is at or
// after t, or the latest offset when there is none.
func (p *partition) offsetForTime(t time.Time) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := func(i int) *transport.Message { m, _ := p.at(i); return m }
	if !p.unordered {
		// Times never decrease: binary search.
		i := sort.Search(p.count, func(i int) bool { return !at(i).Time.Before(t) })
		return p.base + int64(i)
	}
	for i := range p.count {
		if !at(i).Time.Before(t) {
			return p.base + int64(i)
		}
	}
	return p.base + int64(p.count)
}

// watch adds w to the channels signalled on append.
func (p *partition) watch(w chan struct{}) {
	p.mu.Lock()
	p.watchers = append(p.watchers, w)
	p.mu.Unlock()
}

// unwatch removes one registration of w.
func (p *partition) unwatch(w chan struct{}) {
	p.mu.Lock()
	for i, x := range p.watchers {
		if x == w {
			last := len(p.watchers) - 1
			p.watchers[i] = p.watchers[last]
			p.watchers[last] = nil
			p.watchers = p.watchers[:last]
			break
		}
	}
	p.mu.Unlock()
}

// signal wakes the owner of w without blocking; a pending signal is enough.
func signal(w chan struct{}) {
	select {
	case w <- struct{}{}:
	default:
	}
}
