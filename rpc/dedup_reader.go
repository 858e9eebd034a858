package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/transport"
)

// dedupReader follows the dedup topic: it replays it into the window before
// the server takes requests, then keeps learning what other instances of the
// group handle.
type dedupReader struct {
	s    *Server
	w    *dedupWindow
	cons transport.Consumer
	wg   sync.WaitGroup

	mu      sync.Mutex
	waiting map[string]chan struct{} // sentinel id → closed when read back
	// poke ends the reader's pause between reads early: a sync waits for
	// its sentinel.
	poke chan struct{}
	// learned, when set, is called after each batch read while following
	// (see serveRun.othersHandled).
	learned atomic.Pointer[func()]
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
		return nil, fmt.Errorf("replay dedup topic %q: %w", topic, err)
	}
	d := &dedupReader{s: s, w: w, cons: cons, waiting: make(map[string]chan struct{}), poke: make(chan struct{}, 1)}
	if err := d.catchUp(ctx); err != nil {
		cons.Close()
		return nil, fmt.Errorf("replay dedup topic %q: %w", topic, err)
	}
	return d, nil
}

// catchUp writes a sentinel and reads until it comes back. A transport that
// loses records or responses may lose the sentinel: it writes a new one
// every second until one is read back (one whose produce failed counts as
// well: the failure may have been the answer's only). It gives up when it
// makes no progress for catchUpStall: no sentinel written in that time, or
// no record read that comes before the first one written. The topic,
// bounded by its retention only, may hold millions of markers, and a
// catch-up reading them steadily is not cut short, however long it takes;
// but records written after the sentinel (a busy group's markers, the
// catch-up's own later sentinels) bring it no nearer its end, and do not
// keep it going.
func (d *dedupReader) catchUp(ctx context.Context) error {
	catchCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	limit := catchUpStall
	stall := time.AfterFunc(limit, func() { cancel(fmt.Errorf("%w for %v", errCatchUpStalled, limit)) })
	defer stall.Stop()
	var (
		// end is where the first sentinel written was put (acked): the
		// records before it are the catch-up's progress.
		endPart   int32
		endOffset int64
		acked     bool
		past      bool  // a record after end was read, and no sentinel
		writeErr  error // the last failed write of a sentinel
	)
	// stalled is the stall's error, when it ended the catch-up (catchCtx
	// ended and ctx did not).
	stalled := func() error {
		if ctx.Err() != nil {
			return nil
		}
		switch cause := context.Cause(catchCtx); {
		case !errors.Is(cause, errCatchUpStalled):
			return cause
		case !acked:
			if writeErr == nil {
				writeErr = errors.New("no answer")
			}
			return fmt.Errorf("write sentinel: none written for %v: %w", limit, writeErr)
		case past:
			return fmt.Errorf("catching up: the sentinel written at offset %d of partition %d was not read back, nor a record before it for %v, while records after it were: the transport loses records or their headers", endOffset, endPart, limit)
		default:
			return fmt.Errorf("catching up: %w", cause)
		}
	}
	var sentinels []string
	var lastSent time.Time
	var first *transport.Message
	learned := 0
	for found := false; !found; {
		if time.Since(lastSent) > time.Second {
			id := uuid.NewString()
			// A failed produce may have written it: read back, it ends
			// the catch-up as well.
			sentinels = append(sentinels, id)
			at, err := d.writeSentinel(catchCtx, id)
			if err != nil && (permanentProduceErr(err) || catchCtx.Err() != nil) {
				if se := stalled(); se != nil {
					return se
				}
				return fmt.Errorf("write sentinel: %w", err)
			}
			if err != nil {
				writeErr = err
			} else {
				lastSent = time.Now()
				if !acked {
					acked = true
					stall.Reset(limit) // the end is known: progress too
					if at != nil {
						endPart, endOffset = at.Partition, at.Offset
					} else {
						endOffset = -1 // not known: every record is progress
					}
				}
			}
		}
		pollCtx, cancelPoll := context.WithTimeout(catchCtx, 250*time.Millisecond)
		msgs, err := d.cons.Poll(pollCtx)
		cancelPoll()
		if catchCtx.Err() != nil || isClosed(err) {
			if se := stalled(); se != nil {
				return se
			}
			return fmt.Errorf("catching up: %w", errors.Join(err, catchCtx.Err()))
		}
		now := time.Now()
		progress := false
		for i := range msgs {
			m := &msgs[i]
			if first == nil {
				first = m
			}
			if acked && (endOffset < 0 || m.Partition == endPart && m.Offset < endOffset) {
				progress = true
			} else if acked && m.Partition == endPart {
				past = true
			}
			if v, ok := m.Header(headerDedupSentinel); ok && slices.Contains(sentinels, v) {
				found = true
			} else if _, ok := m.Header(headerDedupOf); ok {
				learned++
			}
			d.w.learnMarker(m, now)
		}
		if progress {
			stall.Reset(limit)
		}
	}
	d.checkRetention(first, learned)
	return nil
}

// writeSentinel produces the sentinel record id (for the catch-up and for
// sync) and measures the broker's clock against this machine's with its
// timestamp.
func (d *dedupReader) writeSentinel(ctx context.Context, id string) (*transport.Message, error) {
	before := time.Now()
	out, err := d.s.t.Produce(ctx, transport.Message{
		Topic: d.s.cfg.dedupTopic, Partition: dedupPartition, ManualPartition: true,
		Headers: []transport.Header{{Key: headerDedupSentinel, Value: id}},
	})
	if err != nil {
		return nil, err
	}
	if len(out) != 1 {
		return nil, nil
	}
	if !out[0].Time.IsZero() {
		// The broker stamped the record between before and now: take the
		// middle as this machine's time of the stamp.
		local := before.Add(time.Since(before) / 2)
		d.w.skew.Store(int64(out[0].Time.Sub(local))) // within the round trip and the stamp's millisecond
		d.w.skewKnown.Store(true)
	}
	return &out[0], nil
}

// checkRetention warns when the dedup topic's oldest retained record is
// younger than the window's age while the window is not full: retention
// dropped markers the window would still hold, so requests handled then may
// run again.
func (d *dedupReader) checkRetention(first *transport.Message, learned int) {
	if first == nil || first.Offset == 0 || learned >= d.w.size {
		return
	}
	oldest := first.Time.Add(-time.Duration(d.w.skew.Load()))
	if age := time.Since(oldest); age < d.w.age {
		d.s.log.Warn("rpc: the dedup topic keeps less than the dedup window: requests handled before its oldest record may run again if delivered again; raise its retention",
			"topic", d.s.cfg.dedupTopic, "oldest_offset", first.Offset, "oldest_age", age.Round(time.Second),
			"window_age", d.w.age, "window_size", d.w.size, "markers", learned)
	}
}

func (d *dedupReader) run(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = pollRetrying(ctx, d.cons, nil, "dedup topic", func(msgs []transport.Message) bool {
			now := time.Now()
			for i := range msgs {
				d.w.learnMarker(&msgs[i], now)
				if id, ok := msgs[i].Header(headerDedupSentinel); ok {
					d.arrived(id)
				}
			}
			if f := d.learned.Load(); f != nil && len(msgs) > 0 {
				(*f)()
			}
			// Other instances' markers matter only after a rebalance, so
			// read them in batches rather than waking for every reply
			// this server writes (its own markers come back here too).
			// A large batch, though, is read on without a pause: a poll
			// holds at most so many records (1,000 on the embedded broker,
			// 500 by default on transport/kafka), and a group writing more
			// than that a second would leave the reader further behind
			// every second, for a sync to read within dedupSyncTimeout.
			// While a sync waits, the reader reads on too.
			return len(msgs) == 0 || len(msgs) >= followBurst || d.syncing() || d.pause(ctx)
		})
	}()
}

// syncing reports whether a sync waits for its sentinel.
func (d *dedupReader) syncing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiting) > 0
}

// arrived wakes the sync waiting for sentinel id, if any.
func (d *dedupReader) arrived(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ch, ok := d.waiting[id]; ok {
		close(ch)
		delete(d.waiting, id)
	}
}

// sync returns once every marker written before it was called is in the
// window: it writes a sentinel and waits until the reader reads it back,
// or until ctx ends or dedupSyncTimeout passes (then it returns false and
// the window may lack the newest markers). Serve calls it when partitions
// come to this server, whose records another instance may have handled
// without committing: its markers must be known before those records run.
func (d *dedupReader) sync(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, dedupSyncTimeout)
	defer cancel()
	id := uuid.NewString()
	ch := make(chan struct{})
	d.mu.Lock()
	d.waiting[id] = ch
	d.mu.Unlock()
	defer d.arrived(id) // forget it if it never came
	if _, err := d.writeSentinel(ctx, id); err != nil {
		return false
	}
	select { // read now, not after the pause
	case d.poke <- struct{}{}:
	default:
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// catchUpStall is how long the catch-up waits for a record before it
// gives up (see catchUp). A variable for tests.
var catchUpStall = 30 * time.Second

// errCatchUpStalled ends a catch-up that read nothing for catchUpStall.
var errCatchUpStalled = errors.New("no record of the dedup topic read")

// dedupSyncTimeout bounds a sync of the dedup reader.
const dedupSyncTimeout = 5 * time.Second

// dedupFollowInterval is the pause between reads of the dedup topic once
// caught up. Each read is a request to the broker (an HTTP exchange over
// REST), and this server's own markers, one per reply, keep waking it: the
// pause keeps that cost at about one read a second while fewer than
// followBurst markers come in a second. A sync (a partition coming to this
// server) ends the pause at once.
const dedupFollowInterval = time.Second

// followBurst is the smallest batch of the dedup topic after which the
// reader reads again at once instead of pausing: the markers came faster
// than followBurst a second, and may have filled the poll. Reading on until
// a batch is smaller keeps the reader within about a second of the topic's
// end at any rate, in reads of followBurst records or more, so a sync has
// little to read. It is well under the records a poll of the project's
// transports holds (500 or more by default): a transport whose polls held
// fewer would have its full polls taken for a trickle, and paused after.
const followBurst = 64

// pause waits dedupFollowInterval, or less when a sync pokes the reader,
// and reports false when ctx ended.
func (d *dedupReader) pause(ctx context.Context) bool {
	t := time.NewTimer(dedupFollowInterval)
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.poke:
	case <-ctx.Done():
		return false
	}
	return true
}

func (d *dedupReader) stop() {
	d.wg.Wait()
	_ = d.cons.Close()
}
