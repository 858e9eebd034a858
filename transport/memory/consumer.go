package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

var errConsumerClosed = fmt.Errorf("memory: consumer is closed: %w", transport.ErrClosed)

// Consumer states.
const (
	stateActive int32 = iota
	stateFenced       // replaced by a member with the same instance
	stateClosed       // Close was called
)

// Consumer reads records: either as a member of a consumer group (made by
// Subscribe) or as a group-free reader of whole topics (made by Tail).
//
// Besides transport.Consumer, it has the calls a REST server needs for its
// consumer instances: CommitOffsets (commit as given), CommitPositions
// (commit what Poll returned) and Assignment.
//
// Poll, Commit and the other methods are safe for concurrent use, but Poll
// is meant for one goroutine at a time: concurrent Polls split the records
// between them in no defined way. Close is idempotent. After Close, Poll,
// Commit, CommitOffsets and CommitPositions return an error wrapping
// transport.ErrClosed; after the member was replaced by a newer one with its
// instance id, one wrapping transport.ErrFenced; after the broker closed,
// one wrapping transport.ErrClosed.
//
// The zero value is not usable; get one from Subscribe or Tail.
//
// Liveness: an open member heartbeats by itself (it lives in the broker's
// process), so its session never lapses, whether or not it polls. A member
// that has not called Poll for its max poll interval (Subscription.
// MaxPollInterval, and not blocked in Poll) is dropped from its group as
// stuck: it owns no partitions (its Commit, CommitOffsets and
// CommitPositions fail with transport.ErrNotAssigned) until its next Poll,
// which rejoins the group, as a Kafka consumer does.
//
// Revocation: Subscription.OnRevoked is called with the partitions the
// member loses to a rebalance (a member joining or leaving) or with all of
// them when it is dropped, never for Close or fencing. It runs in the
// goroutine that caused the change (another member's Subscribe, Close or
// Poll, Commit or Groups, or any call that notices an overdue member), with
// that group's lock held and no other: it may call the broker's Produce,
// Fetch, Offsets, OffsetForTime and Topics, but must not call anything that
// takes the same group (Subscribe to it, Committed of it, Groups, or any
// method of its members), which would deadlock.
type Consumer struct {
	b          *Broker
	g          *group // nil for a Tail reader
	instance   string
	topics     []*topic // sorted by name
	topicNames []string // the names of topics
	start      transport.Start
	session    time.Duration // kept for the record: an open member always heartbeats
	maxPoll    time.Duration
	onRevoked  func([]transport.TopicPartition)

	// wake is signalled on append to an owned partition, on reassignment,
	// and when the consumer stops being active or the broker closes: a
	// blocked Poll waits on it (and its ctx) alone.
	wake chan struct{}
	// unhook stops the broker's Close from signalling wake (see
	// newConsumer); called by Close.
	unhook func() bool
	state  atomic.Int32 // stateActive, stateFenced or stateClosed; changed under mu

	mu    sync.Mutex // guards owned and every owned.pos, owned.avail, owned.take
	owned []*owned   // sorted by topic name and partition
	rr    int        // where the next Poll starts, for fairness

	// Guarded by g.mu.
	polling  int       // Polls in progress
	lastSeen time.Time // when a Poll last started or ended, or the join
	expired  bool      // dropped for not polling, in g.gone
}

// owned is a partition a consumer reads.
type owned struct {
	p       *partition
	gp      *groupPart // the group's offsets; nil for a Tail reader
	pos     int64      // next offset to deliver; guarded by Consumer.mu
	start   int64      // pos when the member was given the partition
	avail   int        // Poll's scratch; guarded by Consumer.mu
	take    int        // Poll's scratch; guarded by Consumer.mu
	pending int64      // Commit's scratch (-1: none); guarded by group.mu
}

func newConsumer(b *Broker, g *group, instance string, topics []*topic, names []string) *Consumer {
	wake := make(chan struct{}, 1)
	return &Consumer{
		b:          b,
		g:          g,
		instance:   instance,
		topics:     topics,
		topicNames: names,
		wake:       wake,
		// The broker's Close wakes a blocked Poll. The hook holds the
		// channel only: a consumer never closed is not kept alive by it.
		unhook: context.AfterFunc(b.life, func() { signal(wake) }),
	}
}

// Tail returns a group-free Consumer that reads every partition of topics,
// starting at their latest offsets as of the call: every record produced
// after Tail returns is delivered by its Poll. If retention drops records
// before they are read, it continues at the earliest retained one. Commit,
// CommitOffsets and CommitPositions on it do nothing. Unknown topics are
// created when auto-creation is on, else refused with an error wrapping
// transport.ErrUnknownTopic; no topics or an invalid name is an error
// wrapping transport.ErrInvalid.
//
// The Consumer also implements transport.CarryingPoller (Produce, then
// Poll). It wraps a *Consumer, whose methods it has: reach them with an
// interface type assertion.
func (b *Broker) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("memory: tail: no topics: %w", transport.ErrInvalid)
	}
	ts, names, err := b.topicsFor("tail", topics)
	if err != nil {
		return nil, err
	}
	c := newConsumer(b, nil, "", ts, names)
	for _, t := range ts {
		for _, p := range t.parts {
			p.mu.Lock()
			pos := p.base + int64(p.count)
			p.watchers = append(p.watchers, c.wake)
			p.mu.Unlock()
			c.owned = append(c.owned, &owned{p: p, pos: pos, pending: -1})
		}
	}
	return &tailConsumer{c}, nil
}

// Group returns the consumer group's name, or "" for a Tail reader.
func (c *Consumer) Group() string {
	if c.g == nil {
		return ""
	}
	return c.g.name
}

// Instance returns the member's instance id (generated if the Subscription
// had none), or "" for a Tail reader.
func (c *Consumer) Instance() string { return c.instance }

// Assignment returns a new map from each topic of which the consumer owns
// partitions to those partitions, sorted. It is empty once the consumer is
// closed, fenced or dropped from its group.
func (c *Consumer) Assignment() map[string][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string][]int32)
	for _, o := range c.owned {
		m[o.p.topic.name] = append(m[o.p.topic.name], o.p.index)
	}
	return m
}

// check returns the error a stopped consumer or closed broker reports.
func (c *Consumer) check() error {
	switch c.state.Load() {
	case stateFenced:
		return fmt.Errorf("memory: member %q of group %q: %w", c.instance, c.g.name, transport.ErrFenced)
	case stateClosed:
		return errConsumerClosed
	}
	if c.b.closed.Load() {
		return errBrokerClosed
	}
	return nil
}

// Poll returns the next records of the consumer's partitions: at most
// WithMaxPollRecords' value in all, in offset order per partition, shared
// fairly between partitions with records. If there are none, it waits until
// some are produced to an owned partition, a rebalance hands it partitions
// with records, ctx ends (it returns ctx.Err()) or the consumer or broker
// closes. It has no poll window of its own: give ctx a deadline to bound the
// wait. The messages are read-only: their Value and Headers are the
// broker's.
//
// For a group member, a Poll starting or ending resets its max poll
// interval (a member blocked in Poll is never dropped). A dropped member's
// next Poll rejoins the group.
func (c *Consumer) Poll(ctx context.Context) ([]transport.Message, error) {
	return c.PollAppend(ctx, nil)
}

// PollAppend is Poll for a caller that reuses its buffers: the records
// are appended to dst[:0] when they fit in its capacity (in a new array
// otherwise), which it returns. A caller that polls in a loop may pass
// the previous result back once it is done with its records, and a Poll
// then allocates nothing of its own. Everything else is as for Poll.
func (c *Consumer) PollAppend(ctx context.Context, dst []transport.Message) ([]transport.Message, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.g != nil {
		if err := c.beginPoll(); err != nil {
			return nil, err
		}
	}
	msgs, waited, err := c.poll(ctx, dst[:0])
	if c.g != nil {
		c.endPoll(waited)
	}
	return msgs, err
}

// poll is Poll's loop: collect into dst, or wait and try again. It reports
// whether it waited.
func (c *Consumer) poll(ctx context.Context, dst []transport.Message) (msgs []transport.Message, waited bool, err error) {
	for {
		if msgs, more := c.collect(dst); len(msgs) > 0 {
			if more && waited {
				// Records are left that this Poll may not return (the
				// poll's record or byte limit): another Poll blocked on
				// this consumer sleeps on the signal this one took, and
				// is told in turn (TestBreak8ConcurrentPollsShareABacklog
				// LargerThanOnePoll). A Poll that did not wait took no
				// signal: a later one reads the rest without one.
				signal(c.wake)
			}
			return msgs, waited, nil
		}
		if h := c.b.onBlock; h != nil {
			h(c)
		}
		waited = true
		// While this member waits, another may stop polling for good (a
		// stuck handler): wake when the earliest max poll interval could
		// run out, so its partitions move to us without waiting for new
		// records.
		var expiry <-chan time.Time
		var timer *time.Timer
		if c.g != nil {
			if at, ok := c.g.nextScan(c); ok {
				timer = time.NewTimer(max(at.Sub(c.b.now()), 0) + time.Millisecond)
				expiry = timer.C
			}
		}
		woke := func() {
			if timer != nil {
				timer.Stop()
			}
		}
		select {
		case <-c.wake:
			woke()
		case <-expiry:
			c.g.expireNow(c.b.now())
		case <-ctx.Done():
			woke()
			return nil, true, ctx.Err()
		}
		if err := c.check(); err != nil {
			// Closed, fenced or the broker closed: one signal told us;
			// another Poll blocked on this consumer is told in turn.
			signal(c.wake)
			return nil, true, err
		}
	}
}

// beginPoll marks the member as polling, rejoins the group after a drop
// and drops the group's overdue members.
func (c *Consumer) beginPoll() error {
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := c.check(); err != nil {
		return err
	}
	now := c.b.now()
	c.polling++
	c.lastSeen = now
	changed := g.expireLocked(now)
	if c.expired {
		c.expired = false
		delete(g.gone, c.instance)
		g.members[c.instance] = c
		changed = true
	}
	if changed {
		g.rebalanceLocked()
	}
	return nil
}

// endPoll marks the end of a Poll. One that waited was alive until now; one
// that did not ended about when it began, which beginPoll recorded.
func (c *Consumer) endPoll(waited bool) {
	var now time.Time
	if waited {
		now = c.b.now()
	}
	g := c.g
	g.mu.Lock()
	c.polling--
	if waited {
		c.lastSeen = now
	}
	if c.polling == 0 {
		g.noteExpiryLocked(c)
	}
	g.mu.Unlock()
}

// collect takes the records available now, up to the poll limit, shared
// fairly: every partition with records gets an equal share (rotating who
// gets the remainder), and shares a partition cannot use go to the others.
// They are appended to dst, which is empty, when they fit in it. more
// reports that records were left for a later Poll by the record or byte
// limit.
func (c *Consumer) collect(dst []transport.Message) (msgs []transport.Message, more bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.owned)
	if n == 0 {
		return nil, false
	}
	limit := c.b.cfg.maxPollRecords
	total := 0
	for _, o := range c.owned {
		// end is read without the partition's lock: a plan. read
		// clamps to what is really there.
		ahead := max(o.p.end.Load()-o.pos, 0)
		avail := int(min(ahead, int64(limit)))
		more = more || ahead > int64(limit)
		o.avail, o.take = avail, avail
		total += avail
	}
	if total == 0 {
		return nil, false
	}
	start := c.rr % n
	c.rr = start + 1
	if total > limit {
		for _, o := range c.owned {
			o.take = 0
		}
		for left := limit; left > 0; {
			wanting := 0
			for _, o := range c.owned {
				if o.take < o.avail {
					wanting++
				}
			}
			if wanting == 0 {
				break
			}
			share := max(left/wanting, 1)
			for i := 0; i < n && left > 0; i++ {
				o := c.owned[(start+i)%n]
				if give := min(o.avail-o.take, share, left); give > 0 {
					o.take += give
					left -= give
				}
			}
		}
		total = limit
		more = true
	}
	out := dst
	if cap(out) < total {
		out = make([]transport.Message, 0, total)
	}
	left := c.b.cfg.fetchMaxBytes
	for i := 0; i < n && left > 0; i++ {
		o := c.owned[(start+i)%n]
		if o.take > 0 {
			k := len(out)
			out, o.pos = o.p.read(out, o.pos, o.take)
			if cut := c.b.cfg.fitBytes(out[k:], k > 0, &left); cut < len(out)-k {
				o.pos = out[k+cut].Offset // the rest stays for the next Poll
				clear(out[k+cut:])
				out = out[:k+cut]
				more = true
			}
		}
	}
	if left <= 0 {
		more = true // partitions not visited keep theirs for the next Poll
	}
	return out, more
}

// Commit stores, for each partition among msgs, the highest offset among
// them + 1 as the group's committed offset (the next offset to read), and
// returns nil. If any msg names a partition the member does not own now, it
// stores nothing and returns an error wrapping transport.ErrNotAssigned; a
// negative Offset is an error wrapping transport.ErrInvalid. Commit with no
// msgs, and Commit on a Tail reader, do nothing.
func (c *Consumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	return c.commit(ctx, "commit", commitMode{plusOne: true, fenced: true}, len(msgs), func(i int) (string, int32, int64) {
		return msgs[i].Topic, msgs[i].Partition, msgs[i].Offset
	})
}

// CommitOffsets stores each Offset exactly as given as the group's committed
// offset (the next offset to read) for its partition; for a partition named
// twice, the last one wins. This is the REST API's commit. Errors are as for
// Commit. An offset past the partition's end is stored, as Kafka does; the
// partition's next owner resets it by its Subscription.Start (see
// Subscribe).
func (c *Consumer) CommitOffsets(ctx context.Context, offs ...transport.Offset) error {
	return c.commit(ctx, "commit offsets", commitMode{}, len(offs), func(i int) (string, int32, int64) {
		return offs[i].Topic, offs[i].Partition, offs[i].Offset
	})
}

// CommitOffsetsFenced is CommitOffsets for a client that commits only what
// it handled (kafkarpc's REST transport): an offset below where the
// member's current assignment of its partition began can only come from
// work done before the partition moved away and came back, and is refused
// with an error wrapping transport.ErrNotAssigned, as Commit refuses it.
func (c *Consumer) CommitOffsetsFenced(ctx context.Context, offs ...transport.Offset) error {
	return c.commit(ctx, "commit offsets", commitMode{fenced: true}, len(offs), func(i int) (string, int32, int64) {
		return offs[i].Topic, offs[i].Partition, offs[i].Offset
	})
}

// commitMode says how commit reads its offsets.
type commitMode struct {
	// plusOne: each offset is a record handled (Commit), and the stored
	// offset is the highest + 1; otherwise it is stored as given.
	plusOne bool
	// fenced: an offset below the start of the member's current
	// assignment is refused (see CommitOffsetsFenced).
	fenced bool
}

// commit stores n offsets: at(i) names the partition and offset of the i-th.
// With plusOne (Commit), it stores the highest offset of a partition + 1;
// without (CommitOffsets), the last offset given for it.
func (c *Consumer) commit(ctx context.Context, op string, mode commitMode, n int, at func(i int) (string, int32, int64)) error {
	plusOne := mode.plusOne
	if err := c.check(); err != nil {
		return err
	}
	if c.g == nil || n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := c.check(); err != nil {
		return err
	}
	if g.expireLocked(c.b.now()) {
		g.rebalanceLocked()
	}
	if c.expired {
		return c.errDropped(op)
	}
	for i := range n {
		topic, part, off := at(i)
		var o *owned
		for _, x := range c.owned {
			if x.p.index == part && x.p.topic.name == topic {
				o = x
				break
			}
		}
		var err error
		switch {
		case o == nil:
			err = fmt.Errorf("memory: %s %q partition %d for member %q of group %q: %w",
				op, topic, part, c.instance, g.name, transport.ErrNotAssigned)
		case off < 0:
			err = fmt.Errorf("memory: %s %q partition %d: negative offset %d: %w",
				op, topic, part, off, transport.ErrInvalid)
		case mode.fenced && committedOffset(off, plusOne) < o.start:
			// Only work from before the partition moved away and came
			// back can commit below where this assignment began (Kafka
			// refuses such a commit by its generation).
			err = fmt.Errorf("memory: %s %q partition %d: offset %d is below %d, where member %q's current assignment began: a commit from before a rebalance: %w",
				op, topic, part, committedOffset(off, plusOne), o.start, c.instance, transport.ErrNotAssigned)
		}
		if err != nil {
			for _, x := range c.owned {
				x.pending = -1
			}
			return err
		}
		if !plusOne {
			o.pending = off
		} else if off+1 > o.pending {
			o.pending = off + 1
		}
	}
	if err := c.b.persistCommits(g.name, c.owned, func(o *owned) int64 { return o.pending }); err != nil {
		for _, x := range c.owned {
			x.pending = -1
		}
		return err
	}
	for _, o := range c.owned {
		if o.pending >= 0 {
			o.gp.committed = o.pending
			o.pending = -1
		}
	}
	return nil
}

// committedOffset is the offset a commit stores for off: off+1 for Commit
// (the record handled), off itself for CommitOffsets (the next to read).
func committedOffset(off int64, plusOne bool) int64 {
	if plusOne {
		return off + 1
	}
	return off
}

// CommitPositions commits, for every partition the member owns, its read
// position: the offset after the last record Poll returned (or where it
// started). This is the REST API's commit with no body. On a Tail reader it
// does nothing. A member dropped from its group for exceeding its max poll
// interval owns nothing: it fails with an error wrapping
// transport.ErrNotAssigned (its next Poll rejoins).
func (c *Consumer) CommitPositions(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	if c.g == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := c.check(); err != nil {
		return err
	}
	if g.expireLocked(c.b.now()) {
		g.rebalanceLocked()
	}
	if c.expired {
		return c.errDropped("commit positions")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.b.persistCommits(g.name, c.owned, func(o *owned) int64 { return o.pos }); err != nil {
		return err
	}
	for _, o := range c.owned {
		o.gp.committed = o.pos
	}
	return nil
}

// errDropped is the error of a commit by a member dropped for not polling.
func (c *Consumer) errDropped(op string) error {
	return fmt.Errorf("memory: %s for member %q of group %q: dropped from the group after not polling for %v; its partitions went to other members and its next Poll rejoins: %w",
		op, c.instance, c.g.name, c.maxPoll, transport.ErrNotAssigned)
}

// fence marks the consumer as replaced by a newer member with its instance.
// Its partitions were already taken away.
func (c *Consumer) fence() {
	c.mu.Lock()
	if c.state.Load() == stateActive {
		c.state.Store(stateFenced)
		signal(c.wake) // a blocked Poll returns ErrFenced
	}
	c.mu.Unlock()
}

// Close stops the consumer: a member leaves its group at once, and the
// group's other members take over its partitions from the committed
// offsets; a blocked Poll returns an error wrapping transport.ErrClosed.
// When the last member leaves a group that has no committed offset, the
// group is deleted (a later Subscribe starts it anew, by its Start). It is
// idempotent and returns nil.
func (c *Consumer) Close() error {
	g := c.g
	if g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
	}
	c.mu.Lock()
	prev := c.state.Swap(stateClosed)
	if prev != stateClosed {
		c.unhook()
		signal(c.wake) // a blocked Poll returns ErrClosed
	}
	if g == nil && prev != stateClosed {
		for _, o := range c.owned {
			o.p.unwatch(c.wake)
		}
		c.owned = nil
	}
	c.mu.Unlock()
	if g == nil || prev == stateClosed {
		return nil
	}
	if g.members[c.instance] == c {
		delete(g.members, c.instance)
		g.assignLocked(c, nil, false)
		g.rebalanceLocked()
	}
	if g.gone[c.instance] == c {
		delete(g.gone, c.instance)
	}
	g.leftLocked()
	return nil
}
