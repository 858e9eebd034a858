package memory

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

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
// recs[head:] holds the retained records; recs[head+i] has offset base+i.
// Records are stored as complete transport.Messages (Topic, Partition,
// Offset and Time filled in), so a read is one copy. Their Value and Headers
// point into buffers the broker allocated at Produce and never changes.
type partition struct {
	topic *topic
	index int32

	// end is the next offset to be written. It is written under mu and
	// read without it to plan a Poll.
	end atomic.Int64

	mu        sync.Mutex
	recs      []transport.Message
	head      int
	base      int64 // offset of recs[head]; the earliest retained offset
	bytes     int64 // size of recs[head:] as counted by recordSize
	lastMilli int64 // Time of the last appended record, in ms
	unordered bool  // some record's Time is before its predecessor's

	// watchers are signalled (non-blocking, cap 1 channels) after every
	// append: the wake channels of consumers owning the partition and of
	// blocked Fetches.
	watchers []chan struct{}
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

// append stores msgs, which are fully prepared except for Offset, sets their
// offsets, applies retention and wakes the watchers.
func (p *partition) append(msgs []transport.Message, cfg *config) {
	p.mu.Lock()
	off := p.base + int64(len(p.recs)-p.head)
	for i := range msgs {
		m := &msgs[i]
		m.Offset = off
		off++
		if ms := m.Time.UnixMilli(); ms < p.lastMilli {
			p.unordered = true
		} else {
			p.lastMilli = ms
		}
		p.bytes += int64(recordSize(m))
		p.recs = append(p.recs, *m)
	}
	p.trim(cfg)
	p.end.Store(off)
	for _, w := range p.watchers {
		signal(w)
	}
	p.mu.Unlock()
}

// trim drops the oldest records while the log is over a retention limit,
// keeping at least the newest record. Called with mu held.
func (p *partition) trim(cfg *config) {
	for n := len(p.recs) - p.head; n > 1 && (n > cfg.retentionRecords || p.bytes > cfg.retentionBytes); n-- {
		p.bytes -= int64(recordSize(&p.recs[p.head]))
		p.recs[p.head] = transport.Message{} // release the record's memory
		p.head++
		p.base++
	}
	// Move the live records down once the dead prefix is the larger half,
	// so appends do not grow the slice forever: amortised O(1) per record.
	if p.head >= 64 && p.head*2 >= len(p.recs) {
		n := copy(p.recs, p.recs[p.head:])
		clear(p.recs[n:])
		p.recs = p.recs[:n]
		p.head = 0
	}
}

// read appends up to max records from offset from (clamped to the earliest
// retained one) to dst and returns dst and the offset after the last record
// read. Called without mu.
func (p *partition) read(dst []transport.Message, from int64, max int) ([]transport.Message, int64) {
	p.mu.Lock()
	if from < p.base {
		from = p.base
	}
	if n := p.base + int64(len(p.recs)-p.head) - from; n > 0 {
		if n > int64(max) {
			n = int64(max)
		}
		i := p.head + int(from-p.base)
		dst = append(dst, p.recs[i:i+int(n)]...)
		from += n
	}
	p.mu.Unlock()
	return dst, from
}

// offsets returns the earliest retained offset and the next offset to be
// written.
func (p *partition) offsets() (earliest, latest int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base, p.base + int64(len(p.recs)-p.head)
}

// offsetForTime returns the earliest offset whose record's Time is at or
// after t, or the latest offset when there is none.
func (p *partition) offsetForTime(t time.Time) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := p.recs[p.head:]
	if !p.unordered {
		// Times never decrease: binary search.
		i := sort.Search(len(live), func(i int) bool { return !live[i].Time.Before(t) })
		return p.base + int64(i)
	}
	for i := range live {
		if !live[i].Time.Before(t) {
			return p.base + int64(i)
		}
	}
	return p.base + int64(len(live))
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
