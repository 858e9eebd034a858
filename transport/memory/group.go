package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/transport"
)

// group is a consumer group: its live members, the members dropped for a
// session timeout (who rejoin on their next Poll) and its per-partition
// offsets.
//
// Lock order: Broker.mu (never held while taking the others), then group.mu,
// then Consumer.mu, then partition.mu.
type group struct {
	name string

	mu      sync.Mutex
	members map[string]*Consumer // live members by instance
	gone    map[string]*Consumer // timed-out members by instance
	parts   map[*partition]*groupPart

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
func (g *group) startLocked(gp *groupPart, p *partition, start transport.Start) int64 {
	if gp.committed >= 0 {
		return gp.committed
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

// expireLocked drops the members that have not polled for their session
// timeout and are not blocked in Poll, and reports whether it dropped any.
// The caller rebalances.
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
		case now.Sub(c.lastSeen) > c.session:
			delete(g.members, inst)
			g.gone[inst] = c
			c.expired = true
			g.assignLocked(c, nil)
			changed = true
		default:
			g.noteExpiryLocked(c)
		}
	}
	return changed
}

// nextScan returns, for member self blocked in Poll, the earliest time
// another member not polling could time out, and false when none could
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
		if e := c.lastSeen.Add(c.session); at.IsZero() || e.Before(at) {
			at = e
		}
	}
	return at, !at.IsZero()
}

// expireNow drops the members whose session ran out by now and rebalances
// if any was.
func (g *group) expireNow(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expireLocked(now) {
		g.rebalanceLocked()
	}
}

// noteExpiryLocked records that c, not polling, times out after
// c.lastSeen + c.session unless it polls first.
func (g *group) noteExpiryLocked(c *Consumer) {
	if e := c.lastSeen.Add(c.session); g.scanIdle || e.Before(g.scanAt) {
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
	for _, c := range members {
		g.assignLocked(c, assign[c])
	}
}

// assignLocked makes parts the partitions c owns. Partitions c keeps keep
// their read position; new ones start per startLocked; lost ones stop
// waking c. c's Poll is woken to look at the new assignment.
func (g *group) assignLocked(c *Consumer, parts []*partition) {
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
		next = append(next, &owned{p: p, gp: gp, pos: g.startLocked(gp, p, c.start), pending: -1})
		p.watch(c.wake)
	}
	for _, o := range old {
		if !slices.ContainsFunc(next, func(n *owned) bool { return n.p == o.p }) {
			o.p.unwatch(c.wake)
		}
	}
	c.owned = next
	c.mu.Unlock()
	if changed {
		signal(c.wake)
	}
}

func comparePartitions(x, y *partition) int {
	if c := strings.Compare(x.topic.name, y.topic.name); c != 0 {
		return c
	}
	return int(x.index) - int(y.index)
}

// Subscribe joins a consumer group; see Join. The result is a *Consumer.
func (b *Broker) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	c, err := b.Join(ctx, s)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Join makes a new member of consumer group s.Group reading s.Topics and
// rebalances the group. When Join returns, the member's partitions and the
// positions it reads them from are fixed: a partition starts at the group's
// committed offset, or where the group started it the first time any member
// owned it (earliest or latest per that member's s.Start), so a record
// produced after Join returns is delivered to some member. In every
// rebalance, a member that keeps a partition keeps its read position there;
// a partition that changes hands starts at the committed offset, so the
// records the old owner polled but did not commit are delivered again.
//
// An empty s.Instance gets a generated unique id. A live member with the
// same Instance is replaced: its Poll fails with an error wrapping
// transport.ErrFenced. s.SessionTimeout == 0 means WithSessionTimeout's
// value. Unknown topics are created when auto-creation is on, else refused
// with an error wrapping transport.ErrUnknownTopic; an empty Group, no
// Topics, an invalid topic name, an unknown Start or a negative
// SessionTimeout is an error wrapping transport.ErrInvalid.
func (b *Broker) Join(ctx context.Context, s transport.Subscription) (*Consumer, error) {
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case s.Group == "":
		return nil, fmt.Errorf("memory: subscribe: empty group: %w", transport.ErrInvalid)
	case len(s.Topics) == 0:
		return nil, fmt.Errorf("memory: subscribe group %q: no topics: %w", s.Group, transport.ErrInvalid)
	case s.Start != transport.StartLatest && s.Start != transport.StartEarliest:
		return nil, fmt.Errorf("memory: subscribe group %q: unknown start %v: %w", s.Group, s.Start, transport.ErrInvalid)
	case s.SessionTimeout < 0:
		return nil, fmt.Errorf("memory: subscribe group %q: negative session timeout %v: %w", s.Group, s.SessionTimeout, transport.ErrInvalid)
	}
	topics, names, err := b.topicsFor("subscribe to", s.Topics)
	if err != nil {
		return nil, err
	}
	g, err := b.group(s.Group)
	if err != nil {
		return nil, err
	}
	c := newConsumer(b, g, s.Instance, topics, names)
	if c.instance == "" {
		c.instance = "member-" + uuid.NewString()
	}
	c.start = s.Start
	c.session = s.SessionTimeout
	if c.session == 0 {
		c.session = b.cfg.sessionTimeout
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	now := b.now()
	c.lastSeen = now
	g.expireLocked(now)
	if old := g.members[c.instance]; old != nil {
		delete(g.members, c.instance)
		g.assignLocked(old, nil)
		old.fence()
	}
	if old := g.gone[c.instance]; old != nil {
		delete(g.gone, c.instance)
		old.fence()
	}
	g.members[c.instance] = c
	g.noteExpiryLocked(c)
	g.rebalanceLocked()
	return c, nil
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
