package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/transport"
)

// group is a consumer group: its live members, the members dropped for
// exceeding their max poll interval (who rejoin on their next Poll) and its
// per-partition offsets.
//
// Lock order: group.mu, then Consumer.mu, then partition.mu. Broker.mu is
// never held while taking another lock, so it may be taken under any of
// them (a group deletes itself from the broker under group.mu).
type group struct {
	b    *Broker
	name string

	mu      sync.Mutex
	members map[string]*Consumer // live members by instance
	gone    map[string]*Consumer // members dropped for not polling, by instance
	parts   map[*partition]*groupPart
	deleted bool // removed from the broker; a Join must make a new group
	// emptySince is when the last member of a group with committed offsets
	// left; sweepGroups deletes the group once it is older than the
	// offsets retention and the group is still empty.
	emptySince time.Time

	// No member can time out before scanAt (or ever, with scanIdle, until
	// a member's Poll ends or one joins), so expireLocked can skip the scan.
	scanAt   time.Time
	scanIdle bool
}

// groupPart is a group's state for one partition.
type groupPart struct {
	committed int64 // next offset to read as committed; -1: none
	// resolved is where the group started the partition when it first got
	// an owner (per the owner's Subscription.Start); -1: not yet.
	resolved int64
}

// part returns the group's state for p, creating it.
func (g *group) part(p *partition) *groupPart {
	gp := g.parts[p]
	if gp == nil {
		gp = &groupPart{committed: -1, resolved: -1}
		g.parts[p] = gp
	}
	return gp
}

// startLocked returns where a member that newly owns p starts reading: the
// committed offset, else the position the group resolved the first time the
// partition got an owner, resolving it now if this is that time.
//
// A committed offset past the partition's end (a REST commit may store any
// offset) is out of range: as Kafka's auto.offset.reset does, the member
// starts at the earliest or latest offset per its start instead of waiting
// there and skipping every record below it. The committed offset itself is
// left as it is until the next commit.
func (g *group) startLocked(gp *groupPart, p *partition, start transport.Start) int64 {
	if gp.committed >= 0 {
		earliest, latest := p.offsets()
		if gp.committed <= latest {
			return gp.committed
		}
		if start == transport.StartEarliest {
			return earliest
		}
		return latest
	}
	if gp.resolved < 0 {
		earliest, latest := p.offsets()
		if start == transport.StartEarliest {
			gp.resolved = earliest
		} else {
			gp.resolved = latest
		}
	}
	return gp.resolved
}

// sortedLocked returns the live members sorted by instance.
func (g *group) sortedLocked() []*Consumer {
	ms := make([]*Consumer, 0, len(g.members))
	for _, c := range g.members {
		ms = append(ms, c)
	}
	slices.SortFunc(ms, func(x, y *Consumer) int { return strings.Compare(x.instance, y.instance) })
	return ms
}

// expireLocked drops the members that have not polled for their max poll
// interval and are not blocked in Poll, and reports whether it dropped any.
// The caller rebalances. (Sessions never lapse here: an open Consumer is in
// the broker's process and so always heartbeats.)
func (g *group) expireLocked(now time.Time) bool {
	if g.scanIdle || !now.After(g.scanAt) {
		return false
	}
	changed := false
	g.scanIdle = true
	for inst, c := range g.members {
		switch {
		case c.polling > 0:
			// Alive; its Poll's end calls noteExpiryLocked.
		case now.Sub(c.lastSeen) > c.maxPoll:
			delete(g.members, inst)
			g.gone[inst] = c
			c.expired = true
			g.assignLocked(c, nil, true)
			changed = true
		default:
			g.noteExpiryLocked(c)
		}
	}
	return changed
}

// nextScan returns, for member self blocked in Poll, the earliest time
// another member not polling could exceed its max poll interval, and false when none could
// (the common case of a member alone or among busy members: no timer).
func (g *group) nextScan(self *Consumer) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.scanIdle {
		return time.Time{}, false
	}
	var at time.Time
	for _, c := range g.members {
		if c == self || c.polling > 0 {
			continue
		}
		if e := c.lastSeen.Add(c.maxPoll); at.IsZero() || e.Before(at) {
			at = e
		}
	}
	return at, !at.IsZero()
}

// expireNow drops the members whose max poll interval ran out by now and
// rebalances if any was.
func (g *group) expireNow(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expireLocked(now) {
		g.rebalanceLocked()
	}
}

// noteExpiryLocked records that c, not polling, is dropped after
// c.lastSeen + c.maxPoll unless it polls first.
func (g *group) noteExpiryLocked(c *Consumer) {
	if e := c.lastSeen.Add(c.maxPoll); g.scanIdle || e.Before(g.scanAt) {
		g.scanAt = e
		g.scanIdle = false
	}
}

// rebalanceLocked range-assigns, per topic, the topic's partitions to the
// live members subscribed to it, sorted by instance: with n partitions and k
// members, each gets n/k consecutive partitions and the first n%k one more
// (Kafka's RangeAssignor).
func (g *group) rebalanceLocked() {
	members := g.sortedLocked()
	assign := planLocked(members)
	for _, c := range members {
		g.assignLocked(c, assign[c], true)
	}
}

// planLocked returns the partitions of each of members (sorted by
// instance) by range assignment, as rebalanceLocked assigns them.
func planLocked(members []*Consumer) map[*Consumer][]*partition {
	assign := make(map[*Consumer][]*partition, len(members))
	done := make(map[*topic]bool)
	var subs []*Consumer
	for _, c := range members {
		for _, t := range c.topics {
			if done[t] {
				continue
			}
			done[t] = true
			subs = subs[:0]
			for _, d := range members {
				if slices.Contains(d.topics, t) {
					subs = append(subs, d)
				}
			}
			n, k := len(t.parts), len(subs)
			per, extra := n/k, n%k
			for i, d := range subs {
				from := i*per + min(i, extra)
				cnt := per
				if i < extra {
					cnt++
				}
				assign[d] = append(assign[d], t.parts[from:from+cnt]...)
			}
		}
	}
	return assign
}

// assignLocked makes parts the partitions c owns. Partitions c keeps keep
// their read position; new ones start per startLocked; lost ones stop
// waking c. c's Poll is woken to look at the new assignment. With revoke
// (a rebalance or a drop, not Close or fencing), c's OnRevoked is called
// with the lost partitions, after c.mu is released and with g.mu held.
func (g *group) assignLocked(c *Consumer, parts []*partition, revoke bool) {
	slices.SortFunc(parts, comparePartitions)
	c.mu.Lock()
	old := c.owned
	var next []*owned
	if len(parts) > 0 {
		next = make([]*owned, 0, len(parts))
	}
	changed := len(old) != len(parts)
	for _, p := range parts {
		if i := slices.IndexFunc(old, func(o *owned) bool { return o.p == p }); i >= 0 {
			next = append(next, old[i])
			continue
		}
		changed = true
		gp := g.part(p)
		pos := g.startLocked(gp, p, c.start)
		next = append(next, &owned{p: p, gp: gp, pos: pos, start: pos, pending: -1})
		p.watch(c.wake)
	}
	var lost []transport.TopicPartition
	for _, o := range old {
		if !slices.ContainsFunc(next, func(n *owned) bool { return n.p == o.p }) {
			o.p.unwatch(c.wake)
			lost = append(lost, transport.TopicPartition{Topic: o.p.topic.name, Partition: o.p.index})
		}
	}
	c.owned = next
	c.mu.Unlock()
	if changed {
		signal(c.wake)
	}
	if revoke && len(lost) > 0 && c.onRevoked != nil && c.state.Load() == stateActive {
		c.onRevoked(lost)
	}
}

// leftLocked deletes the group from its broker when its last member has
// left and it holds no committed offset: nothing would be lost, and groups
// made per process (rpc's private readers, reply groups) would otherwise
// pile up in a long-lived broker. A group with committed offsets is kept
// while the broker runs, so a consumer that comes back resumes where it
// committed, for WithOffsetsRetention (Kafka's offsets.retention.minutes,
// 7 days by default) after its last member left; see sweepGroups.
func (g *group) leftLocked() {
	if len(g.members) > 0 || len(g.gone) > 0 {
		return
	}
	if g.hasCommittedLocked() {
		g.emptySince = g.b.now()
		return
	}
	g.deleteLocked()
}

// hasCommittedLocked reports whether the group holds a committed offset.
func (g *group) hasCommittedLocked() bool {
	for _, gp := range g.parts {
		if gp.committed >= 0 {
			return true
		}
	}
	return false
}

// deleteLocked removes the group from its broker. Called with g.mu held.
func (g *group) deleteLocked() {
	g.deleted = true
	b := g.b
	b.mu.Lock()
	if b.groups[g.name] == g {
		delete(b.groups, g.name)
	}
	b.mu.Unlock()
}

func comparePartitions(x, y *partition) int {
	if c := strings.Compare(x.topic.name, y.topic.name); c != 0 {
		return c
	}
	return int(x.index) - int(y.index)
}

// Subscribe makes a new member of consumer group s.Group reading s.Topics
// and rebalances the group. The result is a *Consumer. When Subscribe
// returns, the member's partitions and the positions it reads them from are
// fixed: a partition starts at the group's committed offset, or where the
// group started it the first time any member owned it (earliest or latest
// per that member's s.Start), so a record produced after Subscribe returns
// is delivered to some member. In every rebalance, a member that keeps a
// partition keeps its read position there; a partition that changes hands
// starts at the committed offset, so the records the old owner polled but
// did not commit are delivered again. A committed offset past the end of the
// partition is reset by s.Start, as Kafka's auto.offset.reset.
//
// An empty s.Instance gets a generated unique id. A live member with the
// same Instance is replaced: its Poll fails with an error wrapping
// transport.ErrFenced. A zero s.SessionTimeout or s.MaxPollInterval means
// WithSessionTimeout's or WithMaxPollInterval's value; s.OnRevoked is called
// as described on Consumer. Unknown topics are created when auto-creation is
// on, else refused with an error wrapping transport.ErrUnknownTopic; an
// empty Group, no Topics, an invalid topic name, an unknown Start or a
// negative SessionTimeout or MaxPollInterval is an error wrapping
// transport.ErrInvalid.
func (b *Broker) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := b.join(ctx, s)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// SubscribeCommitted is Subscribe for a member that must not start a
// partition without a committed offset (Kafka's auto.offset.reset=none):
// when a partition the member would own on joining has none, or one past
// the partition's end or before its earliest retained offset (Kafka with no
// reset policy fails that fetch), nothing is done (the group is not
// rebalanced, no member is fenced, and no start is fixed for the
// partition, as the first owner's join fixes it) and those partitions are
// returned, sorted, with a nil Consumer. Otherwise it is Subscribe:
// partitions the member gets in later rebalances start by s.Start.
func (b *Broker) SubscribeCommitted(ctx context.Context, s transport.Subscription) (transport.Consumer, []transport.TopicPartition, error) {
	c, missing, err := b.joinAs(ctx, s, true)
	if err != nil || len(missing) > 0 {
		return nil, missing, err
	}
	return c, nil, nil
}

// join is Subscribe returning the *Consumer.
func (b *Broker) join(ctx context.Context, s transport.Subscription) (*Consumer, error) {
	c, _, err := b.joinAs(ctx, s, false)
	return c, err
}

// joinAs is join; with committedOnly, it is SubscribeCommitted's join.
func (b *Broker) joinAs(ctx context.Context, s transport.Subscription, committedOnly bool) (*Consumer, []transport.TopicPartition, error) {
	if b.closed.Load() {
		return nil, nil, errBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := validSubscription(s); err != nil {
		return nil, nil, err
	}
	topics, names, err := b.topicsFor("subscribe to", s.Topics)
	if err != nil {
		return nil, nil, err
	}
	c := newConsumer(b, nil, s.Instance, topics, names)
	if c.instance == "" {
		c.instance = "member-" + uuid.NewString()
	}
	c.start = s.Start
	c.session = cmp.Or(s.SessionTimeout, b.cfg.sessionTimeout)
	c.maxPoll = cmp.Or(s.MaxPollInterval, b.cfg.maxPollInterval)
	c.onRevoked = s.OnRevoked
	g, err := b.lockedGroup(s.Group)
	if err != nil {
		c.unhook()
		return nil, nil, err
	}
	defer g.mu.Unlock()
	c.g = g
	now := b.now()
	c.lastSeen = now
	expired := g.expireLocked(now)
	if committedOnly {
		if missing := g.uncommittedForLocked(c); len(missing) > 0 {
			c.unhook()
			if expired {
				g.rebalanceLocked()
			}
			if len(g.members) == 0 && len(g.gone) == 0 && !g.hasCommittedLocked() {
				g.deleteLocked() // made by this call: it goes again
			}
			return nil, missing, nil
		}
	}
	if old := g.members[c.instance]; old != nil {
		delete(g.members, c.instance)
		g.assignLocked(old, nil, false)
		old.fence()
	}
	if old := g.gone[c.instance]; old != nil {
		delete(g.gone, c.instance)
		old.fence()
	}
	g.members[c.instance] = c
	g.noteExpiryLocked(c)
	g.rebalanceLocked()
	return c, nil, nil
}

// uncommittedForLocked returns the partitions without a committed offset,
// or with one out of the partition's range, that c, not yet a member, would
// own if it joined now (replacing a member with its instance), sorted.
func (g *group) uncommittedForLocked(c *Consumer) []transport.TopicPartition {
	members := []*Consumer{c}
	for inst, m := range g.members {
		if inst != c.instance {
			members = append(members, m)
		}
	}
	slices.SortFunc(members, func(x, y *Consumer) int { return strings.Compare(x.instance, y.instance) })
	parts := planLocked(members)[c]
	slices.SortFunc(parts, comparePartitions)
	var missing []transport.TopicPartition
	for _, p := range parts {
		if !g.committedInRangeLocked(p) {
			missing = append(missing, transport.TopicPartition{Topic: p.topic.name, Partition: p.index})
		}
	}
	return missing
}

// committedInRangeLocked reports whether the group committed an offset for
// p that is neither past p's end nor before its earliest retained offset
// (retention deleted records from there on): one a member can start at
// without a reset.
func (g *group) committedInRangeLocked(p *partition) bool {
	gp := g.parts[p]
	if gp == nil || gp.committed < 0 {
		return false
	}
	earliest, latest := p.offsets()
	return earliest <= gp.committed && gp.committed <= latest
}

// validSubscription checks what Subscribe refuses before touching topics.
func validSubscription(s transport.Subscription) error {
	switch {
	case s.Group == "":
		return fmt.Errorf("memory: subscribe: empty group: %w", transport.ErrInvalid)
	case len(s.Topics) == 0:
		return fmt.Errorf("memory: subscribe group %q: no topics: %w", s.Group, transport.ErrInvalid)
	case s.Start != transport.StartLatest && s.Start != transport.StartEarliest:
		return fmt.Errorf("memory: subscribe group %q: unknown start %v: %w", s.Group, s.Start, transport.ErrInvalid)
	case s.SessionTimeout < 0:
		return fmt.Errorf("memory: subscribe group %q: negative session timeout %v: %w", s.Group, s.SessionTimeout, transport.ErrInvalid)
	case s.MaxPollInterval < 0:
		return fmt.Errorf("memory: subscribe group %q: negative max poll interval %v: %w", s.Group, s.MaxPollInterval, transport.ErrInvalid)
	}
	return nil
}

// topicsFor resolves topic names for op (creating them when allowed) and
// returns them deduplicated and sorted by name.
func (b *Broker) topicsFor(op string, names []string) ([]*topic, []string, error) {
	ts := make([]*topic, 0, len(names))
	for _, name := range names {
		t, err := b.topicFor(op, name, true)
		if err != nil {
			return nil, nil, err
		}
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(x, y *topic) int { return strings.Compare(x.name, y.name) })
	sorted := make([]string, len(ts))
	for i, t := range ts {
		sorted[i] = t.name
	}
	return ts, sorted, nil
}
