package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/kafkarpc/kafkarpc/transport"
)

// NoticeHandler handles a completion or progress notice of a Send (see
// Client.OnNotice). r.Kind tells which; r.Err is set for a failed request.
type NoticeHandler func(ctx context.Context, r *Reply) error

// OnNotice starts handling the notices of Send: a consumer group
// (WithNoticeGroup, default the service name) reads the notice topic from its
// committed offset, calls h for each completion or progress notice, and
// commits after h returns. An error from h is logged and the notice is
// committed anyway. OnNotice may be called once; it returns an error if the
// group cannot be joined.
func (c *Client) OnNotice(h NoticeHandler) error {
	if h == nil {
		panic("rpc: OnNotice: nil handler")
	}
	started := false
	c.noticeOnce.Do(func() {
		started = true
		if c.isClosed() {
			c.noticeErr = NewError(CodeUnavailable, ErrClosed)
			return
		}
		ctx, cancel := context.WithCancel(c.ctx)
		instance := c.cfg.noticeInstance
		if instance == "" {
			// Fresh, and made here so that no transport default (such as
			// upstash.FromEnv's KAFKA_INSTANCE) turns two clients into twins.
			instance = c.cfg.noticeGroup + "-" + newID()
		}
		cons, err := c.t.Subscribe(ctx, transport.Subscription{
			Group:    c.cfg.noticeGroup,
			Instance: instance,
			Topics:   []string{c.cfg.noticeTopic},
			Start:    transport.StartEarliest,
		})
		if err != nil {
			cancel()
			c.noticeErr = fmt.Errorf("rpc: OnNotice: join %q on %q: %w", c.cfg.noticeGroup, c.cfg.noticeTopic, err)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed { // Close ran while we joined
			cancel()
			cons.Close()
			c.noticeErr = NewError(CodeUnavailable, ErrClosed)
			return
		}
		c.wg.Add(1)
		go c.readNotices(ctx, cancel, cons, h)
	})
	if !started && c.noticeErr == nil {
		return errors.New("rpc: OnNotice called twice")
	}
	return c.noticeErr
}

func (c *Client) readNotices(ctx context.Context, cancel context.CancelFunc, cons transport.Consumer, h NoticeHandler) {
	defer c.wg.Done()
	defer cancel()
	defer cons.Close()
	var seen *recentIDs
	if c.cfg.noticeDedup > 0 {
		r := newRecentIDs(c.cfg.noticeDedup)
		seen = &r
	}
	err := pollRetrying(ctx, cons, c.log.With("topic", c.cfg.noticeTopic), "notice reader", func(msgs []transport.Message) bool {
		for i := range msgs {
			m := &msgs[i]
			env, err := decodeEnvelope(m)
			if err != nil || env.legacy || (env.kind != KindReply && env.kind != KindProgress) {
				c.log.Warn("rpc: notice topic holds a record that is not a reply; skipped", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
				continue
			}
			if env.kind == KindReply && seen != nil {
				if seen.has(env.correlationID) {
					c.dupNotices.Add(1)
					continue
				}
				seen.add(env.correlationID)
			}
			if err := h(ctx, replyFrom(m, &env)); err != nil {
				if ctx.Err() != nil {
					return false // not committed: redelivered to the next reader
				}
				c.log.Error("rpc: notice handler failed; notice committed anyway", "correlation_id", env.correlationID, "err", err)
			}
		}
		if len(msgs) > 0 {
			if err := cons.Commit(context.WithoutCancel(ctx), msgs...); err != nil {
				c.log.Warn("rpc: committing notices failed; they may be redelivered", "err", err)
			}
		}
		return true
	})
	if errors.Is(err, transport.ErrFenced) {
		c.log.Error("rpc: notice reader stopped: another process joined the notice group with this instance id (WithNoticeInstance); notices go to it",
			"group", c.cfg.noticeGroup, "instance", c.cfg.noticeInstance, "err", err)
	} else if err != nil && !errors.Is(err, transport.ErrClosed) {
		c.log.Error("rpc: notice reader stopped", "group", c.cfg.noticeGroup, "err", err)
	}
}

// recentIDs remembers the last n ids added, in bounded memory.
type recentIDs struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newRecentIDs(n int) recentIDs {
	return recentIDs{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recentIDs) add(id string) {
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

func (r *recentIDs) has(id string) bool {
	_, ok := r.set[id]
	return ok
}
