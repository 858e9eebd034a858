package rpc

import (
	"context"
	"sync"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The reply reader: one per Client, positioned by NewClient, it hands each
// reply to the call waiting for it (matched by correlation id), counts
// foreign and late ones, and passes progress notices to WithProgress.

// forget removes a pending call; abandoned calls are remembered so that
// their late replies are told apart from foreign ones.
func (c *Client) forget(id string, abandoned bool) {
	c.mu.Lock()
	delete(c.pending, id)
	if abandoned {
		c.abandoned.add(id)
	}
	c.mu.Unlock()
}

func (c *Client) readReplies(ctx context.Context) {
	defer c.wg.Done()
	_ = pollRetrying(ctx, c.replies, c.log.With("topic", c.cfg.replyTopic), "reply reader", func(msgs []transport.Message) bool {
		for i := range msgs {
			c.deliver(&msgs[i])
		}
		return true
	})
}

func (c *Client) deliver(m *transport.Message) {
	env, err := decodeEnvelope(m)
	if err != nil || env.legacy || (env.kind != KindReply && env.kind != KindProgress) {
		c.foreign.Add(1)
		return
	}
	c.mu.Lock()
	pc, ok := c.pending[env.correlationID]
	if ok && env.kind == KindReply {
		delete(c.pending, env.correlationID)
	}
	late := !ok && c.abandoned.has(env.correlationID)
	c.mu.Unlock()
	switch {
	case ok && env.kind == KindReply:
		// The call's own Reply, which it copies out: no allocation. Only
		// this reader writes it, once, and the caller reads it after the
		// channel says so.
		pc.reply.fill(m, &env)
		pc.ch <- &pc.reply // buffered, one reply per call
	case ok:
		if pc.progress != nil {
			pc.progress(replyFrom(m, &env))
		}
	case late:
		if env.kind == KindReply {
			c.late.Add(1)
			if ok, skipped := c.lateLog.allow(time.Now()); ok {
				c.log.Warn("rpc: late reply dropped: its call already gave up", "correlation_id", env.correlationID, "from", env.from,
					"late_total", c.late.Load(), "not_logged_since_last", skipped)
			}
		}
	default:
		c.foreign.Add(1)
	}
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
