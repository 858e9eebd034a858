package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
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
	dedupPartition       int32 = 0 // one ordered log: a sentinel proves catch-up
)

// dedupWindow remembers the ids of requests handled recently (bounded by
// count and age) with the reply each got, and the ids in flight.
type dedupWindow struct {
	size int
	age  time.Duration
	self string // written in this window's markers, which it skips on reading

	mu       sync.Mutex
	done     map[string]*handledEntry
	fifo     []*handledEntry // insertion order, for eviction
	head     int
	inflight map[string]struct{}
}

type handledEntry struct {
	id    string
	at    time.Time
	reply *transport.Message // nil when nothing was to be sent back
}

func newDedupWindow(size int, age time.Duration) *dedupWindow {
	return &dedupWindow{size: size, age: age, self: uuid.NewString(), done: make(map[string]*handledEntry), inflight: make(map[string]struct{})}
}

type dedupState int

const (
	dedupNew dedupState = iota
	dedupInFlight
	dedupDone
)

// begin reports whether id is new (and then marks it in flight), in flight
// or already done, with the stored entry in the last case.
func (w *dedupWindow) begin(id string, now time.Time) (dedupState, *handledEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict(now)
	if e, ok := w.done[id]; ok {
		return dedupDone, e
	}
	if _, ok := w.inflight[id]; ok {
		return dedupInFlight, nil
	}
	w.inflight[id] = struct{}{}
	return dedupNew, nil
}

// finish records id as done; e nil means it was not (the handler was cut
// short and the request may run again).
func (w *dedupWindow) finish(id string, e *handledEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.inflight, id)
	if e != nil {
		w.insert(e)
	}
}

// has reports whether id is known as done.
func (w *dedupWindow) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.done[id]
	return ok
}

// learnMarker records the entry in a dedup-topic record unless its id is
// known already (as are this server's own markers, read back).
func (w *dedupWindow) learnMarker(m *transport.Message, now time.Time) {
	if by, _ := m.Header(headerDedupBy); by == w.self {
		return // our own: already in the window, no lock needed
	}
	id, ok := m.Header(headerDedupOf)
	if !ok || id == "" || w.has(id) {
		return
	}
	if e, ok := entryFromMarker(m); ok {
		w.learn(e, now)
	}
}

// learn records an entry read from the dedup topic.
func (w *dedupWindow) learn(e *handledEntry, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(e.at) > w.age {
		return
	}
	if _, ok := w.done[e.id]; !ok {
		w.insert(e)
	}
}

func (w *dedupWindow) insert(e *handledEntry) {
	w.done[e.id] = e
	w.fifo = append(w.fifo, e)
	for len(w.done) > w.size && w.head < len(w.fifo) {
		w.drop()
	}
}

func (w *dedupWindow) evict(now time.Time) {
	for w.head < len(w.fifo) && now.Sub(w.fifo[w.head].at) > w.age {
		w.drop()
	}
}

func (w *dedupWindow) drop() {
	e := w.fifo[w.head]
	w.fifo[w.head] = nil
	w.head++
	if cur, ok := w.done[e.id]; ok && cur == e {
		delete(w.done, e.id)
	}
	if w.head > 1024 && w.head > len(w.fifo)/2 {
		n := copy(w.fifo, w.fifo[w.head:])
		clear(w.fifo[n:])
		w.fifo, w.head = w.fifo[:n], 0
	}
}

// markerFor builds the dedup-topic record for a handled request.
func markerFor(topic, by, id string, reply *transport.Message) transport.Message {
	m := transport.Message{Topic: topic, Partition: dedupPartition, ManualPartition: true, Key: id}
	if reply == nil {
		m.Headers = []transport.Header{{Key: headerDedupBy, Value: by}, {Key: headerDedupOf, Value: id}}
		return m
	}
	m.Value = reply.Value
	m.Headers = make([]transport.Header, 0, len(reply.Headers)+4)
	m.Headers = append(m.Headers, transport.Header{Key: headerDedupBy, Value: by}, transport.Header{Key: headerDedupOf, Value: id},
		transport.Header{Key: headerDedupReplyTo, Value: reply.Topic})
	if reply.ManualPartition {
		m.Headers = append(m.Headers, transport.Header{Key: headerDedupReplyPart, Value: strconv.Itoa(int(reply.Partition))})
	}
	m.Headers = append(m.Headers, reply.Headers...)
	return m
}

// entryFromMarker parses a dedup-topic record; ok is false for sentinels
// and foreign records.
func entryFromMarker(m *transport.Message) (*handledEntry, bool) {
	id, ok := m.Header(headerDedupOf)
	if !ok || id == "" {
		return nil, false
	}
	e := &handledEntry{id: id, at: m.Time}
	replyTo, _ := m.Header(headerDedupReplyTo)
	if replyTo == "" {
		return e, true
	}
	reply := &transport.Message{Topic: replyTo, Key: id, Value: m.Value}
	for _, h := range m.Headers {
		switch h.Key {
		case headerDedupOf, headerDedupReplyTo, headerDedupBy:
		case headerDedupReplyPart:
			if p, err := strconv.ParseInt(h.Value, 10, 32); err == nil && p >= 0 {
				reply.Partition, reply.ManualPartition = int32(p), true
			}
		default:
			reply.Headers = append(reply.Headers, h)
		}
	}
	e.reply = reply
	return e, true
}

// dedupReader follows the dedup topic: it replays it into the window before
// the server takes requests, then keeps learning what other instances of the
// group handle.
type dedupReader struct {
	s    *Server
	w    *dedupWindow
	cons transport.Consumer
	wg   sync.WaitGroup
}

// startDedupReader joins a private group on the dedup topic from its
// earliest record, writes a sentinel and returns once the sentinel was read
// back: everything handled before is then in the window.
func startDedupReader(ctx context.Context, s *Server, w *dedupWindow) (*dedupReader, error) {
	topic := s.cfg.dedupTopic
	cons, err := s.t.Subscribe(ctx, transport.Subscription{
		Group:  topic + ".reader." + uuid.NewString(),
		Topics: []string{topic},
		Start:  transport.StartEarliest,
	})
	if err != nil {
		return nil, fmt.Errorf("rpc: dedup topic %q: %w", topic, err)
	}
	// Write a sentinel and read until it comes back. A transport that loses
	// records or responses may lose the sentinel: write a new one every
	// second until one is read back or the catch-up deadline passes.
	catchCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var sentinels []string
	var lastSent time.Time
	for found := false; !found; {
		if time.Since(lastSent) > time.Second {
			id := uuid.NewString()
			_, err := s.t.Produce(catchCtx, transport.Message{
				Topic: topic, Partition: dedupPartition, ManualPartition: true,
				Headers: []transport.Header{{Key: headerDedupSentinel, Value: id}},
			})
			if err == nil {
				sentinels = append(sentinels, id)
				lastSent = time.Now()
			} else if permanentProduceErr(err) || catchCtx.Err() != nil {
				cons.Close()
				return nil, fmt.Errorf("rpc: dedup topic %q: write sentinel: %w", topic, err)
			}
		}
		pollCtx, cancelPoll := context.WithTimeout(catchCtx, 250*time.Millisecond)
		msgs, err := cons.Poll(pollCtx)
		cancelPoll()
		if catchCtx.Err() != nil || errors.Is(err, transport.ErrClosed) {
			cons.Close()
			return nil, fmt.Errorf("rpc: dedup topic %q: catching up: %w", topic, errors.Join(err, catchCtx.Err()))
		}
		now := time.Now()
		for i := range msgs {
			if v, ok := msgs[i].Header(headerDedupSentinel); ok && slices.Contains(sentinels, v) {
				found = true
			}
			w.learnMarker(&msgs[i], now)
		}
	}
	return &dedupReader{s: s, w: w, cons: cons}, nil
}

func (d *dedupReader) run(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = pollRetrying(ctx, d.cons, nil, "dedup topic", func(msgs []transport.Message) bool {
			now := time.Now()
			for i := range msgs {
				d.w.learnMarker(&msgs[i], now)
			}
			// Other instances' markers matter only after a rebalance, so
			// read them in batches rather than waking for every reply
			// this server writes (its own markers come back here too).
			return len(msgs) == 0 || sleepCtx(ctx, dedupFollowInterval)
		})
	}()
}

// dedupFollowInterval is the pause between reads of the dedup topic once
// caught up.
const dedupFollowInterval = 20 * time.Millisecond

func (d *dedupReader) stop() {
	d.wg.Wait()
	_ = d.cons.Close()
}
