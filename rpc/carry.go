package rpc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// carryWait is the longest the poll loop waits, after dispatching a batch,
// for the workers to hand it their replies before it polls again. It
// bounds what a slow handler can add to the next poll's start; a fast one
// (the common case) hands its reply in well within it, and the loop polls
// as soon as every record given out is either handed in or done.
const carryWait = time.Millisecond

// carrier sends the settle stage's produces with the poll loop's next poll,
// when the consumer can (transport.CarryingPoller): over the REST API the
// replies and dedup markers of a batch then ride on the consume that asks
// for the next one, and a call costs one HTTP exchange fewer.
//
// A window opens when a poll returns records and closes when the loop
// polls again. A worker whose produce starts while the window is open
// hands its records in (hand) and blocks until the poll that carries them
// says whether they were written, as it would block on its own produce;
// one that starts while it is closed produces on its own, as without a
// carrier. The loop closes the window early, releasing what was handed in
// (the workers then produce on their own), before anything that may block
// it: a full work queue, the dedup reader's catch-up, the end of Serve. So
// no worker waits on the loop while the loop waits on the workers, and a
// record is done (committable) only after its reply is acknowledged,
// exactly as before.
//
// Before polling, the loop waits (gather) until every record it gave out
// is either handed in or done, or carryWait passes, whichever is first.
//
// A carried produce that fails is a failed first attempt of each worker's
// own produce (its retries follow as without a carrier), except that one
// holding several workers' records that the transport refused outright
// (nothing written; not ErrOutcomeUnknown) is given back to them: each
// produces its own, so that one bad record (a reply-to topic that does not
// exist) fails no other reply.
//
// A nil *carrier is the absence of one: its methods do nothing.
type carrier struct {
	cons transport.Consumer
	cp   transport.CarryingPoller
	// limit, when the consumer has one, bounds a poll's batch: a hand-in
	// that would take it over is not carried (its worker produces it on
	// its own, at the same time as the poll).
	limit transport.CarryLimiter
	wake  chan struct{} // a worker handed in or finished while the loop waits
	// timer bounds gather's wait; used by the poll loop only.
	timer *time.Timer

	// dispatched counts records sent to the workers, finished those the
	// workers are done with (whatever became of them).
	dispatched, finished atomic.Int64

	mu     sync.Mutex
	open   bool // hand-ins are taken
	closed bool // Serve is stopping: no window opens again
	msgs   []transport.Message
	slots  []*carrySlot
}

// carrySlot is one hand-in, done when the poll that carried it says
// whether its records were written: err is set, then done gets its one
// value (it is buffered: the loop never waits on a worker).
type carrySlot struct {
	done chan struct{}
	err  error // errNotCarried when released
}

// finish completes the slot with err. Called once per hand-in.
func (s *carrySlot) finish(err error) {
	s.err = err
	s.done <- struct{}{}
}

// carrySlots holds slots for reuse: a worker whose hand-in was answered
// puts its slot back (one given up on, by a hard stop, is left to the
// garbage collector: its answer may still come).
var carrySlots = sync.Pool{New: func() any { return &carrySlot{done: make(chan struct{}, 1)} }}

// errNotCarried tells a worker that its records were not carried: it
// produces them on its own.
var errNotCarried = errors.New("rpc: records not carried")

// newCarrier returns the carrier of cons, nil when cons cannot carry.
func newCarrier(cons transport.Consumer) *carrier {
	cp, ok := cons.(transport.CarryingPoller)
	if !ok {
		return nil
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	limit, _ := cons.(transport.CarryLimiter)
	return &carrier{cons: cons, cp: cp, limit: limit, wake: make(chan struct{}, 1), timer: t}
}

// hand gives msgs to the next poll when a window is open and waits for
// their outcome, or until ctx ends (then the outcome is ctx's error, as for
// a produce cut short). carried is false when no window was open or the
// window was released: the caller produces msgs itself.
func (c *carrier) hand(ctx context.Context, msgs []transport.Message) (err error, carried bool) {
	if c == nil || len(msgs) == 0 {
		return nil, false
	}
	c.mu.Lock()
	if !c.open {
		c.mu.Unlock()
		return nil, false
	}
	c.msgs = append(c.msgs, msgs...)
	if c.limit != nil && !c.limit.CarryFits(c.msgs) {
		// Over what one poll carries: produced on its own, at once,
		// rather than making the whole batch go alone before the poll.
		c.msgs = c.msgs[:len(c.msgs)-len(msgs)]
		c.mu.Unlock()
		return nil, false
	}
	slot := carrySlots.Get().(*carrySlot)
	c.slots = append(c.slots, slot)
	c.mu.Unlock()
	c.signal()
	select {
	case <-slot.done:
	case <-ctx.Done():
		// A hard stop: the carried produce may still be written; as an
		// own produce cut short, the record stays uncommitted.
		return ctx.Err(), true
	}
	err = slot.err
	slot.err = nil
	carrySlots.Put(slot)
	if err == errNotCarried {
		return nil, false
	}
	return err, true
}

// signal wakes the loop's gather, if it waits.
func (c *carrier) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sent counts a record sent to the workers.
func (c *carrier) sent() {
	if c != nil {
		c.dispatched.Add(1)
	}
}

// done counts a record the workers are done with.
func (c *carrier) done() {
	if c != nil {
		c.finished.Add(1)
		c.signal()
	}
}

// openWindow lets workers hand in records, unless Serve is stopping.
func (c *carrier) openWindow() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.open = !c.closed
	c.mu.Unlock()
}

// release closes the window and gives back what was handed in: the
// workers produce it on their own. close also keeps it closed for good.
func (c *carrier) release() { c.shut(false) }
func (c *carrier) close()   { c.shut(true) }

func (c *carrier) shut(forGood bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.open = false
	c.closed = c.closed || forGood
	slots := c.slots
	c.msgs, c.slots = nil, nil
	c.mu.Unlock()
	for _, s := range slots {
		s.finish(errNotCarried)
	}
}

// settledLocked reports whether every record given out is handed in or
// done. Called with c.mu held.
func (c *carrier) settledLocked() bool {
	return c.dispatched.Load()-c.finished.Load() <= int64(len(c.slots))
}

// gather closes the window once every record given out is handed in or
// done, or carryWait passed, or ctx ended, and returns what was handed in.
func (c *carrier) gather(ctx context.Context) ([]transport.Message, []*carrySlot) {
	armed := false
	defer func() {
		if armed {
			c.timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if !c.open || c.settledLocked() {
			msgs, slots := c.takeLocked()
			c.mu.Unlock()
			return msgs, slots
		}
		c.mu.Unlock()
		if !armed {
			c.timer.Reset(carryWait)
			armed = true
		}
		select {
		case <-c.wake:
			continue
		case <-c.timer.C:
			armed = false
		case <-ctx.Done():
			// Serve is stopping: the workers produce on their own.
			c.release()
			return nil, nil
		}
		c.mu.Lock()
		msgs, slots := c.takeLocked()
		c.mu.Unlock()
		return msgs, slots
	}
}

// takeLocked closes the window and takes what was handed in.
func (c *carrier) takeLocked() ([]transport.Message, []*carrySlot) {
	c.open = false
	msgs, slots := c.msgs, c.slots
	c.msgs, c.slots = nil, nil
	return msgs, slots
}

// poll is the poll loop's Poll: it carries what the workers handed in.
func (c *carrier) poll(ctx context.Context) ([]transport.Message, error) {
	msgs, slots := c.gather(ctx)
	var (
		out []transport.Message
		err error
	)
	if len(slots) == 0 {
		out, err = c.cons.Poll(ctx)
	} else {
		var once atomic.Bool
		out, err = c.cp.PollCarrying(ctx, msgs, func(_ []transport.Message, err error) {
			if !once.CompareAndSwap(false, true) {
				return // a transport that calls it twice: the first outcome stands
			}
			if err != nil && len(slots) > 1 && !errors.Is(err, transport.ErrOutcomeUnknown) {
				// Nothing was written, and one worker's records may be
				// what the transport refused (a reply-to topic that does
				// not exist, a record too large): each worker produces
				// its own, and gets its own outcome.
				err = errNotCarried
			}
			for _, s := range slots {
				s.finish(err)
			}
		})
	}
	if err == nil {
		c.openWindow() // replies to these records may be carried by the next poll
	}
	return out, err
}

// carryingConsumer is the serve run's consumer as the poll loop sees it:
// its Poll carries (see carrier.poll).
type carryingConsumer struct {
	transport.Consumer
	c *carrier
}

func (cc carryingConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	return cc.c.poll(ctx)
}
