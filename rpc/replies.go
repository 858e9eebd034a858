package rpc

import (
	"sync"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Reply delivery: whoever holds the reading slot (slot.go), a call or the
// background reader, hands each reply to the call waiting for it (matched
// by correlation id), counts foreign and late ones, and passes progress
// notices to WithProgress.

// deliver hands the reply or progress notice m to its call; see deliverTo.
func (c *Client) deliver(m *transport.Message) { c.deliverTo(nil, m) }

// deliverTo hands the reply or progress notice m to the call waiting for
// it, or counts it as late or foreign. self is the call that reads (the
// slot's holder), nil for the background reader: its own reply is written
// to it and deliverTo reports true, where another call's goes on its
// channel.
func (c *Client) deliverTo(self *pendingCall, m *transport.Message) bool {
	env, err := decodeEnvelope(m)
	if err != nil || env.legacy || (env.kind != KindReply && env.kind != KindProgress) {
		c.foreign.Add(1)
		return false
	}
	c.mu.Lock()
	pc, ok := c.pending[env.correlationID]
	if ok && env.kind == KindReply {
		delete(c.pending, env.correlationID)
		if pc != self {
			c.detachLocked(pc)
		}
	}
	late := !ok && c.abandoned.has(env.correlationID)
	c.mu.Unlock()
	switch {
	case ok && env.kind == KindReply:
		// The call's own Reply, which it copies out: no allocation. Only
		// the slot's holder writes it, once, and the caller reads it
		// after the channel says so (or is the holder).
		pc.reply.fill(m, &env)
		if pc == self {
			return true
		}
		pc.ch <- &pc.reply // buffered, one reply per call; never the slot's token too (pc does not hold it)
	case ok:
		if pc.progress != nil {
			pc.progress(replyFrom(m, &env))
		}
	case late:
		if env.kind == KindReply {
			c.late.Add(1)
			if o := c.cfg.observer; o != nil {
				o.Counted(Event{Kind: EventLateReply, Topic: m.Topic})
			}
			if env.errCode == CodeDeadlineExceeded.String() {
				// The server's answer to a request whose deadline had
				// passed (the deadline travels with it): it comes after
				// the call gave up by design, and each caller timeout
				// would else log a warning besides its own error.
				c.log.Debug("rpc: late reply dropped: the server answered deadline_exceeded after the call gave up",
					"correlation_id", env.correlationID, "from", env.from)
			} else if ok, skipped := c.lateLog.allow(time.Now()); ok {
				c.log.Warn("rpc: late reply dropped: its call already gave up", "correlation_id", env.correlationID, "from", env.from,
					"late_total", c.late.Load(), "not_logged_since_last", skipped)
			}
		}
	default:
		c.foreign.Add(1)
	}
	return false
}

// logLimiter lets one log line through per lateLogEvery. The zero value is
// ready; it is safe for concurrent use.
type logLimiter struct {
	mu      sync.Mutex
	next    time.Time
	skipped int64
}

// allow reports whether a line may be logged at now and, if so, how many
// were refused since the last one.
func (l *logLimiter) allow(now time.Time) (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.skipped++
		return false, 0
	}
	l.next = now.Add(lateLogEvery)
	skipped := l.skipped
	l.skipped = 0
	return true, skipped
}
