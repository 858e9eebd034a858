// Package memory is kafkarpc's embedded broker: an in-process stand-in for
// Kafka with topics, partitions, consumer groups, committed offsets,
// retention and long-polling consumers.
//
// A [Broker] implements [transport.Transport] and [transport.Tailer]. It
// follows Kafka where Kafka's behaviour is observable: keyed records land on
// the partition Kafka's default partitioner would pick (murmur2), offsets
// start at 0 per partition, timestamps have millisecond precision, a
// committed offset is the next offset to read, groups range-assign
// partitions to members sorted by instance id, and records polled but not
// committed are delivered again to a partition's next owner.
//
// A broker made by New keeps everything in memory and runs no goroutines of
// its own: work happens in the callers' goroutines, and blocked Polls and
// Fetches are woken through channels when records are appended. A broker
// made by NewDurable also writes its records, topics and committed offsets
// to a data directory and recovers them at the next start (see NewDurable);
// with FsyncEvery it runs one goroutine, which Close stops.
package memory

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/disklog"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Interface checks.
var (
	_ transport.Transport    = (*Broker)(nil)
	_ transport.Tailer       = (*Broker)(nil)
	_ transport.TopicChecker = (*Broker)(nil)
	_ transport.Consumer     = (*Consumer)(nil)
)

var errBrokerClosed = fmt.Errorf("memory: broker is closed: %w", transport.ErrClosed)

// Broker is an embedded, in-memory Kafka-like broker.
//
// Make one with New; the zero value is not usable. All methods are safe for
// concurrent use. After Close, every method that returns an error returns
// one wrapping transport.ErrClosed, Topics returns an empty map and Groups
// returns nil.
type Broker struct {
	cfg  config
	done chan struct{} // closed by Close
	// life ends (endLife) when Close is called: each consumer hangs the
	// wake-up of its blocked Poll on it (see newConsumer), so that a
	// blocked Poll selects on its own channels only, and not on done,
	// which every blocked Poll would share (its lock was the most
	// contended one under load).
	life    context.Context
	endLife context.CancelFunc

	// Test seams, set before the broker is used: the clock for max poll
	// intervals and append times, and a hook run each time a Poll is about
	// to block.
	now     func() time.Time
	onBlock func(*Consumer)

	// topics maps a name to its *topic. Entries are added under mu, and
	// read without it: one lock-free load on the produce path, and O(1) to
	// add (a copied map made creating n topics cost O(n²)).
	topics sync.Map
	// recent is a direct-mapped cache in front of topics, indexed by a
	// hash of the name (with seed): a hit costs a short hash and a string
	// compare, where a sync.Map load hashes the name boxed as an
	// interface and walks a trie whose nodes every core reads (about 2%
	// of the CPU of an rpc call on this broker, three lookups a call).
	// Topics are never removed or replaced, so an entry stays right once
	// stored.
	recent     [topicCacheSlots]atomic.Pointer[topic]
	recentSeed maphash.Seed
	// nTopics and nParts count the topics and their partitions; written
	// under mu, read without it for early cap checks.
	nTopics, nParts atomic.Int64
	closed          atomic.Bool

	// disk is the data dir of a durable broker (NewDurable); nil keeps
	// everything in memory only.
	disk *disklog.Dir

	mu      sync.Mutex        // serialises topic creation, groups and Close
	groups  map[string]*group // by name
	sweepAt time.Time         // sweepGroups does nothing before; guarded by mu
}

// New returns a running broker configured by opts (see the With... options
// for each default). An option given a bad value (WithPartitions(20000), a
// WithTopic with an invalid name...) makes it fail with an error naming the
// option, wrapping transport.ErrInvalid.
func New(opts ...Option) (*Broker, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.durable.set {
		return nil, fmt.Errorf("memory: WithFsync, WithSegmentBytes and WithLogger apply to NewDurable only: %w", transport.ErrInvalid)
	}
	b := newBrokerWith(cfg)
	if err := b.createConfigTopics(); err != nil {
		return nil, err
	}
	return b, nil
}

// newConfig applies opts to the defaults.
func newConfig(opts []Option) (config, error) {
	cfg := defaults()
	for _, o := range opts {
		if err := o.apply(&cfg); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// newBrokerWith returns a broker with cfg and no topics.
func newBrokerWith(cfg config) *Broker {
	life, endLife := context.WithCancel(context.Background())
	return &Broker{
		cfg:     cfg,
		done:    make(chan struct{}),
		life:    life,
		endLife: endLife,
		now:     time.Now,
		groups:  make(map[string]*group),

		recentSeed: maphash.MakeSeed(),
	}
}

// createConfigTopics creates WithTopic's topics.
func (b *Broker) createConfigTopics() error {
	for _, ts := range b.cfg.topics {
		n := ts.partitions
		if n <= 0 {
			n = b.cfg.partitions
		}
		if err := b.CreateTopic(ts.name, n); err != nil {
			return fmt.Errorf("memory: WithTopic(%q, %d): %w", ts.name, ts.partitions, err)
		}
	}
	return nil
}

// validTopicName reports why name is not a valid Kafka topic name: 1 to 249
// characters of ASCII letters, digits, '.', '_' and '-', and neither "." nor
// "..". A name valid here is valid on a real Kafka cluster.
func validTopicName(name string) error {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("topic name must be 1 to 249 characters and not %q or %q", ".", "..")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name may hold only ASCII letters, digits, '.', '_' and '-', not %q", rune(c))
		}
	}
	return nil
}

// CreateTopic creates topic name with partitions partitions. Creating a
// topic that exists with the same count is a no-op; with a different count it
// is an error (partition counts never change). A bad name (see Kafka's
// rules: 1 to 249 characters of [a-zA-Z0-9._-], not "." or "..") or a count
// outside 1..10,000 is an error wrapping transport.ErrInvalid.
func (b *Broker) CreateTopic(name string, partitions int) error {
	if err := validTopicName(name); err != nil {
		return fmt.Errorf("memory: create topic %q: %v: %w", name, err, transport.ErrInvalid)
	}
	if partitions <= 0 || partitions > maxPartitions {
		return fmt.Errorf("memory: create topic %q: partition count %d is outside 1..%d: %w",
			name, partitions, maxPartitions, transport.ErrInvalid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return errBrokerClosed
	}
	if t := b.lookup(name); t != nil {
		if len(t.parts) != partitions {
			return fmt.Errorf("memory: create topic %q with %d partitions: it exists with %d: %w",
				name, partitions, len(t.parts), transport.ErrInvalid)
		}
		return nil
	}
	return b.publishLocked("create topic", []*topic{newTopic(name, partitions)})
}

// topicCacheSlots is the size of Broker.recent.
const topicCacheSlots = 256

// lookup returns the topic called name, or nil.
func (b *Broker) lookup(name string) *topic {
	slot := &b.recent[maphash.String(b.recentSeed, name)%topicCacheSlots]
	if t := slot.Load(); t != nil && t.name == name {
		return t
	}
	v, ok := b.topics.Load(name)
	if !ok {
		return nil
	}
	t := v.(*topic)
	slot.Store(t)
	return t
}

// checkCaps fails when adding topics with parts partitions in all would
// pass WithMaxTopics' caps. op names the operation in the error.
func (b *Broker) checkCaps(op string, topics, parts int) error {
	nt, np := b.nTopics.Load()+int64(topics), b.nParts.Load()+int64(parts)
	if nt > int64(b.cfg.maxTopics) || np > int64(b.cfg.maxTotalParts) {
		return fmt.Errorf("memory: %s: %d more topics with %d partitions would pass the broker's limit of %d topics and %d partitions: %w",
			op, topics, parts, b.cfg.maxTopics, b.cfg.maxTotalParts, transport.ErrInvalid)
	}
	return nil
}

// publishLocked adds ts, new topics whose names are not taken, all or none
// (none when the caps would be passed). Called with mu held.
func (b *Broker) publishLocked(op string, ts []*topic) error {
	parts := 0
	for _, t := range ts {
		parts += len(t.parts)
	}
	if err := b.checkCaps(op, len(ts), parts); err != nil {
		return err
	}
	if err := b.persistTopics(ts); err != nil {
		return err
	}
	for _, t := range ts {
		b.topics.Store(t.name, t)
	}
	b.nTopics.Add(int64(len(ts)))
	b.nParts.Add(int64(parts))
	return nil
}

// topicFor returns topic name for the operation op (used in errors, e.g.
// `subscribe to`), creating it when create is set and auto-creation is on.
func (b *Broker) topicFor(op, name string, create bool) (*topic, error) {
	if t := b.lookup(name); t != nil {
		return t, nil
	}
	if err := validTopicName(name); err != nil {
		return nil, fmt.Errorf("memory: %s %q: %v: %w", op, name, err, transport.ErrInvalid)
	}
	if !create || !b.cfg.autoCreate {
		return nil, fmt.Errorf("memory: %s %q: %w", op, name, transport.ErrUnknownTopic)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	t := b.lookup(name)
	if t == nil {
		t = newTopic(name, b.cfg.partitions)
		if err := b.publishLocked(op+" "+strconv.Quote(name), []*topic{t}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// partitionOf returns an existing partition for the operation op; it never
// creates topics.
func (b *Broker) partitionOf(op, name string, partition int32) (*partition, error) {
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	t, err := b.topicFor(op, name, false)
	if err != nil {
		return nil, err
	}
	if partition < 0 || int(partition) >= len(t.parts) {
		return nil, fmt.Errorf("memory: %s %q: partition %d does not exist (the topic has %d): %w",
			op, name, partition, len(t.parts), transport.ErrInvalid)
	}
	return t.parts[partition], nil
}

// Topics returns a new map from each topic's name to its partition count.
func (b *Broker) Topics() map[string]int32 {
	out := make(map[string]int32)
	b.topics.Range(func(k, v any) bool {
		out[k.(string)] = int32(len(v.(*topic).parts))
		return true
	})
	return out
}

// Offsets returns the earliest retained offset of a partition and the latest
// one, which is the offset the next record will get (so earliest == latest
// means the partition holds no records). It never creates topics: an
// unknown topic is an error wrapping transport.ErrUnknownTopic, a partition
// out of range one wrapping transport.ErrInvalid.
func (b *Broker) Offsets(topic string, partition int32) (earliest, latest int64, err error) {
	p, err := b.partitionOf("offsets of", topic, partition)
	if err != nil {
		return 0, 0, err
	}
	earliest, latest = p.offsets()
	return earliest, latest, nil
}

// OffsetForTime returns the earliest retained offset of a partition whose
// record has a Time at or after t, or the latest offset (the next to be
// written) if there is none. Errors are as for Offsets.
func (b *Broker) OffsetForTime(topic string, partition int32, t time.Time) (int64, error) {
	p, err := b.partitionOf("offset for time of", topic, partition)
	if err != nil {
		return 0, err
	}
	return p.offsetForTime(t), nil
}

// Fetch reads a partition without a consumer group: it returns up to max
// records (max <= 0 means WithMaxPollRecords' value) starting at offset, in
// offset order, within WithFetchMaxBytes' partition cap. An offset below the earliest retained one starts at the
// earliest. If no record exists yet at offset (including an offset beyond
// the latest), Fetch waits until one is produced, ctx ends (it returns
// ctx.Err()) or the broker closes. It never creates topics: errors are as
// for Offsets.
func (b *Broker) Fetch(ctx context.Context, topic string, partition int32, offset int64, max int) ([]transport.Message, error) {
	p, err := b.partitionOf("fetch", topic, partition)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = b.cfg.maxPollRecords
	}
	var wake chan struct{}
	defer func() {
		if wake != nil {
			p.unwatch(wake)
		}
	}()
	for {
		if b.closed.Load() {
			return nil, errBrokerClosed
		}
		p.mu.Lock()
		if n := p.availableLocked(offset); n > 0 {
			out, _ := p.readLocked(make([]transport.Message, 0, min(n, int64(max))), offset, max)
			p.mu.Unlock()
			left := b.cfg.partitionBytes
			return out[:b.cfg.fitBytes(out, false, &left)], nil
		}
		if wake == nil {
			// Registered under the same lock as the check above, so
			// no append can slip between them unnoticed.
			wake = make(chan struct{}, 1)
			p.watchers = append(p.watchers, wake)
		}
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.done:
			return nil, errBrokerClosed
		}
	}
}

// WaitAny waits until one of the partitions named in from has a record at
// or after its offset (nil at once if one has), ctx ends (ctx.Err()) or the
// broker closes. It uses one wake channel for all of them and starts no
// goroutine. Errors for unknown topics or partitions are as for Offsets.
func (b *Broker) WaitAny(ctx context.Context, from []transport.Offset) error {
	parts := make([]*partition, len(from))
	for i, f := range from {
		p, err := b.partitionOf("wait on", f.Topic, f.Partition)
		if err != nil {
			return err
		}
		parts[i] = p
	}
	wake := make(chan struct{}, 1)
	watched := 0
	defer func() {
		for _, p := range parts[:watched] {
			p.unwatch(wake)
		}
	}()
	for i, p := range parts {
		p.mu.Lock()
		ready := p.availableLocked(from[i].Offset) > 0
		if !ready {
			// Registered under the lock of the check: no append slips by.
			p.watchers = append(p.watchers, wake)
			watched++
		}
		p.mu.Unlock()
		if ready {
			return nil
		}
	}
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return errBrokerClosed
	}
}

// Committed returns the offset group committed for a partition (the next
// offset the group will read), or -1 when the group has committed none
// there (or does not exist). Errors are as for Offsets.
func (b *Broker) Committed(group, topic string, partition int32) (int64, error) {
	p, err := b.partitionOf("committed offset of", topic, partition)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	g := b.groups[group]
	b.mu.Unlock()
	if g == nil {
		return -1, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if gp := g.parts[p]; gp != nil {
		return gp.committed, nil
	}
	return -1, nil
}

// GroupInfo describes a consumer group, as listed by Groups.
type GroupInfo struct {
	// Name of the group.
	Name string
	// Members sorted by Instance; empty when every member has left a group
	// that has committed offsets (a group without any is deleted when its
	// last member leaves).
	Members []MemberInfo
}

// MemberInfo describes one live member of a consumer group.
type MemberInfo struct {
	// Instance is the member's instance id (generated when its
	// Subscription left it empty).
	Instance string
	// Topics the member subscribed to, sorted.
	Topics []string
	// Assignment maps each topic of which the member owns partitions to
	// those partitions, sorted. Topics where it owns none are absent.
	Assignment map[string][]int32
}

// Groups returns every consumer group the broker knows, sorted by name, with
// its live members. Like a Poll, it first drops members that exceeded their
// max poll interval. The result is a copy.
func (b *Broker) Groups() []GroupInfo {
	b.sweepGroups()
	b.mu.Lock()
	gs := make([]*group, 0, len(b.groups))
	for _, g := range b.groups {
		gs = append(gs, g)
	}
	b.mu.Unlock()
	if len(gs) == 0 {
		return nil
	}
	slices.SortFunc(gs, func(x, y *group) int { return strings.Compare(x.name, y.name) })
	out := make([]GroupInfo, len(gs))
	now := b.now()
	for i, g := range gs {
		g.mu.Lock()
		if g.expireLocked(now) {
			g.rebalanceLocked()
		}
		members := g.sortedLocked()
		info := GroupInfo{Name: g.name, Members: make([]MemberInfo, len(members))}
		for j, c := range members {
			info.Members[j] = MemberInfo{
				Instance:   c.instance,
				Topics:     slices.Clone(c.topicNames),
				Assignment: c.Assignment(),
			}
		}
		g.mu.Unlock()
		out[i] = info
	}
	return out
}

// newGroup returns a new, empty group called name.
func (b *Broker) newGroup(name string) *group {
	return &group{
		b:       b,
		name:    name,
		members: make(map[string]*Consumer),
		gone:    make(map[string]*Consumer),
		parts:   make(map[*partition]*groupPart),
	}
}

// lockedGroup returns the consumer group called name, creating it, with
// its mu held. A group deleted by its last member's leaving (see leftLocked)
// is never reused: the caller gets a new one.
func (b *Broker) lockedGroup(name string) (*group, error) {
	b.sweepGroups()
	for {
		b.mu.Lock()
		if b.closed.Load() {
			b.mu.Unlock()
			return nil, errBrokerClosed
		}
		g := b.groups[name]
		if g == nil {
			g = b.newGroup(name)
			b.groups[name] = g
		}
		b.mu.Unlock()
		g.mu.Lock()
		if !g.deleted {
			return g, nil
		}
		g.mu.Unlock()
	}
}

// sweepGroups deletes the groups that have had no member for the offsets
// retention (see WithOffsetsRetention), with their committed offsets. It
// runs in the callers that find groups (Subscribe, Join, Groups), at most
// once per tenth of the retention (and at least once a minute), so that it
// costs O(1) per call on average and the broker needs no goroutine.
func (b *Broker) sweepGroups() {
	now := b.now()
	b.mu.Lock()
	if now.Before(b.sweepAt) || b.closed.Load() {
		b.mu.Unlock()
		return
	}
	b.sweepAt = now.Add(min(b.cfg.offsetsRetention/10, time.Minute))
	gs := make([]*group, 0, len(b.groups))
	for _, g := range b.groups {
		gs = append(gs, g)
	}
	b.mu.Unlock()
	for _, g := range gs {
		g.mu.Lock()
		if !g.deleted && len(g.members) == 0 && len(g.gone) == 0 && !g.emptySince.IsZero() &&
			now.Sub(g.emptySince) >= b.cfg.offsetsRetention {
			g.deleteLocked()
			b.persistGroupDeleted(g.name)
		}
		g.mu.Unlock()
	}
}

// Close shuts the broker down: every blocked Poll and Fetch returns an error
// wrapping transport.ErrClosed, and so does every later call. The records
// and offsets are released; a durable broker (NewDurable) first fsyncs its
// files (not with FsyncNever) and releases its data dir. Close is
// idempotent and always returns nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	b.closed.Store(true)
	close(b.done)
	b.endLife() // wakes the blocked Polls, which then see closed
	b.groups = nil
	b.mu.Unlock()
	b.closeDisk()
	b.topics.Clear()
	return nil
}

// MissingTopics implements transport.TopicChecker: the topics the broker
// does not have and, with auto-creation off (WithAutoCreate), a Produce
// would fail on. With auto-creation on nothing is missing: a Produce
// creates the topic.
func (b *Broker) MissingTopics(ctx context.Context, topics ...string) ([]string, error) {
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	for _, name := range topics {
		if b.cfg.autoCreate || b.lookup(name) != nil || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}
