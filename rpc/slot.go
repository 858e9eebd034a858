package rpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The reading slot (leader/follower reply reading).
//
// The reply consumer is polled by one goroutine at a time: whoever holds
// the slot. A call that is about to wait for its reply takes the slot when
// it is free and polls the reply topic itself, delivering the replies and
// progress notices of other calls as it goes (deliverTo), until its own
// reply comes; then it hands the slot to the longest-waiting call that
// could not take it (a waiter), or, when none waits, to the background
// reader if some call waits without reading (passive calls: WithResend, or
// after a poll error), or leaves it free. A call that finds the slot taken
// waits on its channel, as a waiter; the slot may be handed to it there
// (slotToken on its channel), and it reads from then on.
//
// So a lone caller crosses no reply-reader goroutine: its reply wakes it
// directly; and when the reply consumer can carry records
// (transport.CarryingPoller), the request rides on the caller's first poll
// (over the REST API, one /fetch carries the request and waits for the
// reply).
//
// The background reader holds the slot only when a passive call needs
// someone to read, after a poll error (it retries with pollBackoff, and the
// calls leave reading to it until a poll works again), or when the slot has
// been idle for idleReadAfter (late replies are then still counted). A call
// that arrives while it holds the slot cancels its poll (which loses no
// records) and is handed the slot.
//
// Every field of readSlot, and the role, handed and wait-list fields of
// each pendingCall, are guarded by Client.mu.
type readSlot struct {
	state  slotState
	holder *pendingCall // the call holding the slot (state slotCaller)
	// holderDL is the holder's deadline: timer cancels ctx at it.
	holderDL time.Time
	// takes counts the times the slot was taken, to tell idleness apart
	// and a holder's parent-cancel callback from a later holder's.
	takes uint64
	// waitHead and waitTail are the waiters, oldest first.
	waitHead, waitTail *pendingCall
	// passive counts the pending calls that wait without reading.
	passive int
	// failing says the last poll failed: calls do not read until the
	// background reader has polled successfully again.
	failing bool
	// stopped says the reply consumer was closed or fenced under the
	// client: nobody reads; calls wait until their deadline.
	stopped bool

	// ctx is the poll context of whoever holds the slot, canceled to stop
	// a holder's poll (its deadline, its parent's end, a caller preempting
	// the background reader, Close) and renewed by the next holder.
	ctx    context.Context
	cancel context.CancelFunc
	// timer (time.AfterFunc) cancels ctx when the holding call's deadline
	// passes.
	timer *time.Timer
	// wake wakes the background reader.
	wake chan struct{}
}

type slotState uint8

const (
	slotFree   slotState = iota
	slotCaller           // a call holds it (readSlot.holder)
	slotReader           // the background reader holds it
)

// callRole is how a pending call waits for its reply.
type callRole uint8

const (
	roleNone    callRole = iota
	roleHolder           // holds the slot (or was handed it: pendingCall.handed)
	roleWaiter           // waits on its channel; may be handed the slot
	rolePassive          // waits on its channel; does not read
)

// slotToken, sent on a waiting call's channel, hands it the slot.
var slotToken Reply

// idleReadAfter is how long the slot must be left free before the
// background reader polls on its own (to count late replies and drop
// foreign ones while no call reads). A call that comes meanwhile cancels
// that poll and takes the slot over.
const idleReadAfter = 10 * time.Millisecond

// readResult is how a holder's reading ended.
type readResult uint8

const (
	readDone       readResult = iota // the call is over (its reply came, or it gave up): return the error
	readWait                         // the slot was given up after a poll error: wait on the channel, passive
	readSendFailed                   // the carried request was not written: the slot was given up; produce it
)

func (c *Client) initSlot() {
	c.slot.wake = make(chan struct{}, 1)
	c.slot.timer = time.AfterFunc(time.Hour, c.slotExpired)
	c.slot.timer.Stop()
	c.cp, _ = c.replies.(transport.CarryingPoller)
}

// wakeReaderLocked wakes the background reader.
func (c *Client) wakeReaderLocked() {
	select {
	case c.slot.wake <- struct{}{}:
	default:
	}
}

// slotCtxLocked returns the slot's poll context, renewed when a cancel
// ended the last one.
func (c *Client) slotCtxLocked() context.Context {
	s := &c.slot
	if s.ctx == nil || s.ctx.Err() != nil {
		s.ctx, s.cancel = context.WithCancel(c.ctx)
	}
	return s.ctx
}

// slotExpired runs when the holding call's deadline passes: it ends the
// holder's poll. A stale firing (the holder changed) finds a deadline not
// passed yet, or no call holding, and does nothing.
func (c *Client) slotExpired() {
	c.mu.Lock()
	s := &c.slot
	if s.state == slotCaller && s.holder != nil && !s.holder.handed && !time.Now().Before(s.holderDL) && s.cancel != nil {
		s.cancel()
	}
	c.mu.Unlock()
}

// joinResult is what joinLocked made of a call.
type joinResult uint8

const (
	joinHold    joinResult = iota // it holds the slot
	joinWait                      // it waits, behind a call that reads
	joinPreempt                   // it waits, and the background reader is handing it the slot
	joinPassive                   // it waits and does not read
	joinLater                     // join once the request is sent (joinSent)
)

// joinLocked makes the new pending call pc a reader, a waiter or a
// passive call. dl is its deadline. first says its request is still to be
// sent, and carry that its first poll can carry it: a call whose request
// is still to be sent joins only once it is sent (joinLater, then
// joinSent), so that the slot is never held by, or handed to, a call busy
// sending (over REST, a produce can take a round trip, and with retries
// up to the call's deadline, all the time nobody would read); except a
// call that carries its request with its first poll, when it can read at
// once (the slot is free) or is the first to preempt the background
// reader.
func (c *Client) joinLocked(pc *pendingCall, dl time.Time, first, carry bool) joinResult {
	s := &c.slot
	switch {
	case c.cfg.resend > 0 || s.failing || s.stopped:
		// A call that resends must do so on time, which a call blocked in
		// Poll could not without cutting its poll short at every tick
		// (over REST, an aborted request each time): it leaves reading to
		// others.
		pc.role = rolePassive
		s.passive++
		if s.state == slotFree && !s.stopped {
			s.state = slotReader
			c.wakeReaderLocked()
		}
		return joinPassive
	case first && !carry:
		// Found by break8: a call that held the slot while producing on
		// its own left the reply topic unread until its produce ended.
		return joinLater
	case s.state == slotFree:
		c.holdLocked(pc, dl)
		return joinHold
	case first && (s.state == slotCaller || s.waitHead != nil):
		// A call reads, or the background reader is already handing the
		// slot to another: this one would produce as a waiter, and could
		// be handed the slot while still sending.
		return joinLater
	}
	pc.role = roleWaiter
	pc.prevW, pc.nextW = s.waitTail, nil
	if s.waitTail != nil {
		s.waitTail.nextW = pc
	} else {
		s.waitHead = pc
	}
	s.waitTail = pc
	if s.state == slotReader {
		// The background reader may be in a long poll: cut it short, and
		// it hands the slot on (readReplies checks for waiters under mu
		// before it polls, so this cannot be missed, nor a reader that
		// has not polled yet).
		if s.cancel != nil {
			s.cancel()
		}
		if pc == s.waitHead {
			return joinPreempt
		}
	}
	return joinWait
}

// joinSent joins the call pc (id), whose request was sent, to the slot,
// and reports whether it holds it. A call answered meanwhile (its reply is
// on its channel) or closed joins nothing.
func (c *Client) joinSent(pc *pendingCall, id string, dl time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.pending[id] != pc {
		return false
	}
	return c.joinLocked(pc, dl, false, false) == joinHold
}

// awaitSlot waits for the background reader to hand pc the slot
// (joinPreempt), before the call's request is sent: it reports whether it
// did; if not, the call is over with the error (its deadline passed, its
// context ended or the client closed) and was removed.
func (c *Client) awaitSlot(lc *lazyCtx, pc *pendingCall, id, topic string) (bool, error) {
	dl, _ := lc.Deadline()
	if pc.timer == nil {
		pc.timer = time.NewTimer(time.Until(dl))
	} else {
		pc.timer.Reset(time.Until(dl))
	}
	defer stopTimer(pc.timer)
	select {
	case <-pc.ch: // the token: no reply can come before the request is sent
		return true, nil
	case <-pc.timer.C:
		c.leave(pc, id, false)
		return false, callTimedOut(topic)
	case <-lc.parent.Done():
		c.leave(pc, id, false)
		return false, callEnded(topic, lc.parent.Err())
	case <-c.done:
		c.leave(pc, id, false)
		return false, callClosed(topic)
	}
}

// holdLocked gives the slot to pc, whose deadline is dl.
func (c *Client) holdLocked(pc *pendingCall, dl time.Time) {
	s := &c.slot
	s.state, s.holder = slotCaller, pc
	s.takes++
	pc.role, pc.gen = roleHolder, s.takes
	c.armHolderLocked(dl)
}

// armHolderLocked readies the slot for a holder whose deadline is dl: the
// timer that ends its poll at dl, and a live poll context.
func (c *Client) armHolderLocked(dl time.Time) {
	c.slot.holderDL = dl
	c.slot.timer.Reset(time.Until(dl))
	c.slotCtxLocked()
}

// unlinkLocked takes the waiter pc off the wait list.
func (c *Client) unlinkLocked(pc *pendingCall) {
	s := &c.slot
	if pc.prevW != nil {
		pc.prevW.nextW = pc.nextW
	} else {
		s.waitHead = pc.nextW
	}
	if pc.nextW != nil {
		pc.nextW.prevW = pc.prevW
	} else {
		s.waitTail = pc.prevW
	}
	pc.prevW, pc.nextW = nil, nil
}

// detachLocked ends pc's waiting role as its reply is delivered to it by
// another reader.
func (c *Client) detachLocked(pc *pendingCall) {
	switch pc.role {
	case roleWaiter:
		c.unlinkLocked(pc)
	case rolePassive:
		c.slot.passive--
	default:
		return
	}
	pc.role = roleNone
}

// releaseLocked gives up the slot, held by the calling holder (a call or
// the background reader), and hands it on: to the oldest waiter, else to
// the background reader when a passive call needs it or polls fail, else
// nobody.
func (c *Client) releaseLocked() {
	s := &c.slot
	if s.state == slotCaller {
		s.timer.Stop()
		if s.holder != nil {
			s.holder.role = roleNone
		}
	}
	s.holder = nil
	if s.failing || s.stopped {
		// The waiters would only fail in turn: they wait passively, and
		// the background reader retries.
		for w := s.waitHead; w != nil; {
			next := w.nextW
			w.prevW, w.nextW, w.role = nil, nil, rolePassive
			s.passive++
			w = next
		}
		s.waitHead, s.waitTail = nil, nil
	}
	if w := s.waitHead; w != nil {
		c.unlinkLocked(w)
		s.state, s.holder = slotCaller, w
		s.takes++
		w.role, w.gen, w.handed = roleHolder, s.takes, true
		w.ch <- &slotToken // buffered and empty: only the holder delivers to w, and w holds the slot now
		return
	}
	if (s.passive > 0 || s.failing) && !s.stopped {
		s.state = slotReader
		c.wakeReaderLocked()
		return
	}
	s.state = slotFree
}

// leaveLocked ends pc's part in the slot when its call ends without its
// reply being delivered by another reader (it gave up, its send failed,
// or it read its own reply).
func (c *Client) leaveLocked(pc *pendingCall) {
	if pc.role != roleHolder {
		c.detachLocked(pc)
		return
	}
	if pc.handed {
		// The token may still be on the channel; no reply is (only the
		// holder delivers to pc, and pc held the slot).
		select {
		case <-pc.ch:
		default:
		}
		pc.handed = false
	}
	c.releaseLocked()
	pc.role = roleNone
}

// leave removes the pending call pc (id) and ends its part in the slot;
// abandoned calls are remembered so that their late replies are told apart
// from foreign ones.
func (c *Client) leave(pc *pendingCall, id string, abandoned bool) {
	c.mu.Lock()
	c.leaveCallLocked(pc, id, abandoned)
	c.mu.Unlock()
}

// leaveCallLocked is leave with c.mu held.
func (c *Client) leaveCallLocked(pc *pendingCall, id string, abandoned bool) {
	if c.pending[id] == pc {
		delete(c.pending, id)
	}
	if abandoned {
		c.rememberAbandonedLocked(id)
	}
	c.leaveLocked(pc)
}

// rememberAbandonedLocked remembers id, a call that gave up, for its late
// reply. It keeps a copy: id shares its arena (see newID), which a call
// that gave up, one among many that did not, would keep alive alone (1,152
// bytes for 36, for each of the 4,096 remembered).
func (c *Client) rememberAbandonedLocked(id string) {
	c.abandoned.add(strings.Clone(id))
}

// readOwn polls the reply topic as the slot holder until pc's reply comes
// (readDone, written to out), the call gives up (readDone with its error)
// or a poll fails (readWait: the background reader retries, and the call
// waits passively). handed says pc was handed the slot while waiting and
// has not taken it up yet. carry says the request, pc.req[0], is still to
// be produced, by the first poll (c.cp is not nil); a carried produce that
// fails gives up the slot and returns readSendFailed with its error,
// except ErrOutcomeUnknown: the call then reads on, waiting for the reply
// of a request that may have been written.
func (c *Client) readOwn(lc *lazyCtx, pc *pendingCall, id, topic string, out *Reply, handed, carry bool) (readResult, error) {
	if handed {
		dl, _ := lc.Deadline()
		c.mu.Lock()
		pc.handed = false
		if c.closed {
			// Removed from pending too, as every call that ends without
			// its reply (found by break8: it was left there).
			c.leaveCallLocked(pc, id, false)
			c.mu.Unlock()
			return readDone, callClosed(topic)
		}
		c.armHolderLocked(dl)
		c.mu.Unlock()
	}
	// Only the holder renews the slot's context, under mu, which the take
	// above or in joinLocked held: reading it here is safe.
	ctx := c.slot.ctx
	stop := c.watchParent(lc, pc)
	for {
		var msgs []transport.Message
		var err error
		if carry {
			carry = false
			pc.ackState.Store(ackNone)
			msgs, err = c.cp.PollCarrying(ctx, pc.req[:], pc.ackFn)
			if err != nil && pc.ackState.Load() == ackFailed && ctx.Err() == nil {
				// The request was not written (or may not have been):
				// nothing was polled. (With ctx ended, the call's
				// deadline, its context or Close ended the produce: the
				// call ends as below, with their error.)
				if errors.Is(pc.ackErr, transport.ErrOutcomeUnknown) {
					c.log.Debug("rpc: request may not have been written; waiting for its reply", "topic", topic, "id", id, "err", err)
					continue
				}
				stop()
				c.mu.Lock()
				c.leaveLocked(pc)
				c.mu.Unlock()
				return readSendFailed, err
			}
		} else {
			msgs, err = c.replies.Poll(ctx)
		}
		mine := false
		for i := range msgs {
			if c.deliverTo(pc, &msgs[i]) {
				mine = true
			}
		}
		if mine {
			stop()
			c.mu.Lock()
			c.leaveLocked(pc)
			c.mu.Unlock()
			return readDone, pc.finish(out)
		}
		if err == nil {
			continue
		}
		stop()
		dl, _ := lc.Deadline()
		switch {
		case c.isClosed():
			c.leave(pc, id, false)
			return readDone, callClosed(topic)
		case lc.parent.Err() != nil:
			c.leave(pc, id, true)
			return readDone, callEnded(topic, lc.parent.Err())
		case !time.Now().Before(dl):
			c.leave(pc, id, true)
			return readDone, callTimedOut(topic)
		}
		// A transient poll error (or the consumer closed or fenced under
		// the client): the background reader retries, with backoff, and
		// the call waits for its reply on its channel.
		c.log.Warn("rpc: reply poll failed; the reply reader retries", "topic", c.cfg.replyTopic, "err", err)
		c.mu.Lock()
		c.slot.failing = true
		c.releaseLocked()
		if pc.quiet {
			// Close and the deadline pass over a quiet call that holds the
			// slot (see awaitQuiet), and may have come since the checks
			// above: once passive, nothing else would end it (found by
			// break16: the call waited until its deadline after Close).
			switch {
			case c.closed:
				c.leaveCallLocked(pc, id, false)
				c.mu.Unlock()
				return readDone, callClosed(topic)
			case !time.Now().Before(dl):
				c.leaveCallLocked(pc, id, true)
				c.mu.Unlock()
				return readDone, callTimedOut(topic)
			}
		}
		pc.role = rolePassive
		c.slot.passive++
		c.mu.Unlock()
		return readWait, nil
	}
}

// watchParent ends the holder pc's poll when the call's parent context
// ends, and returns the function that stops watching. A parent that cannot
// end costs nothing.
func (c *Client) watchParent(lc *lazyCtx, pc *pendingCall) (stop func() bool) {
	if lc.parent.Done() == nil {
		return noStop
	}
	gen := pc.gen
	return context.AfterFunc(lc.parent, func() {
		c.mu.Lock()
		if s := &c.slot; s.holder == pc && pc.gen == gen && s.cancel != nil {
			s.cancel()
		}
		c.mu.Unlock()
	})
}

func noStop() bool { return false }

// The outcome of a carried produce, as pendingCall.acked records it.
const (
	ackNone int32 = iota
	ackOK
	ackFailed
)

// acked is the pendingCall's PollCarrying callback: it records the
// produce's outcome (the first one, should a transport call it twice).
func (pc *pendingCall) acked(_ []transport.Message, err error) {
	if err != nil {
		if pc.ackState.Load() == ackNone {
			pc.ackErr = err
			pc.ackState.Store(ackFailed)
		}
		return
	}
	pc.ackState.CompareAndSwap(ackNone, ackOK)
}

// finish ends a call whose holder read its reply (pc.reply) itself: the
// reply is copied to out and pc readied for the pool, as replied does.
func (pc *pendingCall) finish(out *Reply) error {
	*out = pc.reply
	pc.reply = Reply{}
	pc.req[0] = transport.Message{}
	pc.progress = nil
	pc.ackErr = nil
	pc.answered = true
	if out.Err != nil {
		return out.Err
	}
	return nil
}

// readReplies is the background reader: it holds the slot when a passive
// call needs a reader, when polls fail (retrying them with pollBackoff) and
// when the slot has been left free for idleReadAfter.
func (c *Client) readReplies() {
	defer c.wg.Done()
	s := &c.slot
	idle := time.NewTimer(idleReadAfter)
	defer idle.Stop()
	seen := ^uint64(0) // s.takes when last seen; none yet
	var bo backoff.BackOff
	failures := 0
	for {
		c.mu.Lock()
		if c.closed || s.stopped {
			c.mu.Unlock()
			return
		}
		take := s.state == slotReader
		if !take && s.state == slotFree && s.takes == seen {
			s.state, take = slotReader, true
		}
		if take && s.waitHead != nil && !s.failing {
			c.releaseLocked() // a call wants to read: it does
			take = false
		}
		var ctx context.Context
		if take {
			s.takes++
			ctx = c.slotCtxLocked()
		}
		seen = s.takes
		c.mu.Unlock()
		if !take {
			idle.Reset(idleReadAfter)
			select {
			case <-s.wake:
			case <-idle.C:
			case <-c.done:
				return
			}
			continue
		}

		msgs, err := c.replies.Poll(ctx)
		for i := range msgs {
			c.deliverTo(nil, &msgs[i])
		}
		var wait time.Duration
		switch {
		case err == nil:
			failures, bo = 0, nil
		case c.ctx.Err() != nil:
			return // closed
		case ctx.Err() != nil:
			// A call cut the poll short to read itself: hand it the slot.
		case errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrFenced):
			// Nobody can read any more: calls wait until their deadline.
			c.log.Warn("rpc: reply reader stopped", "topic", c.cfg.replyTopic, "err", err)
			c.mu.Lock()
			s.stopped = true
			c.releaseLocked()
			c.mu.Unlock()
			return
		default:
			failures++
			c.log.Warn("rpc: reply reader poll failed; retrying", "topic", c.cfg.replyTopic, "err", err, "failures", failures)
			if bo == nil {
				bo = pollBackoff.newBackOff()
			}
			wait = bo.NextBackOff()
		}
		c.mu.Lock()
		switch {
		case err == nil:
			s.failing = false
		case wait > 0:
			s.failing = true
		}
		if wait == 0 {
			c.releaseLocked()
		}
		c.mu.Unlock()
		if wait > 0 && !sleepCtx(c.ctx, wait) {
			return
		}
	}
}
