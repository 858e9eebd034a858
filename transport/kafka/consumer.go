package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/transport"
)

// consumer is a group member (Subscribe) or a group-free reader (Tail).
//
// A group member owns one franz-go client at a time: it is replaced when
// the member is dropped for exceeding its max poll interval and polls
// again. Its hooks (assigned, revoked, lost) run on franz-go's group
// goroutine and take c.mu; Subscription.OnRevoked is called under c.mu.
type consumer struct {
	t        *Transport
	sub      transport.Subscription // Group == "" for a tail
	instance string                 // the static instance id, "" for a dynamic member
	session  time.Duration
	heart    time.Duration
	maxPoll  time.Duration
	tailFrom map[string]map[int32]kgo.Offset

	stop     context.Context // canceled on Close and when fenced
	stopNow  context.CancelFunc
	closeOne sync.Once

	mu       sync.Mutex
	cl       *kgo.Client
	assigned map[transport.TopicPartition]int64 // partition → first offset of the current assignment (startUnknown until its committed offset is fetched)
	joined   chan struct{}                      // closed at the first assignment of the current client
	owns     chan struct{}                      // closed at the first non-empty assignment of the current client
	closed   bool
	fenced   bool
	dropped  bool // max poll interval passed; the next Poll rejoins
	polling  int
	lastPoll time.Time
	timer    *time.Timer
	scanned  time.Time // a tail's last look for partitions added to its topics
	// holdUntil: a static member's Poll returns no records before it (see
	// onAssigned).
	holdUntil time.Time

	fenceClosed chan struct{} // closed once fence has closed the client
}

var _ transport.Consumer = (*consumer)(nil)

// Subscribe joins s.Group with a franz-go group client of its own (the
// classic protocol, cooperative-sticky balancing, auto-commit off: only
// Commit commits).
//
// Topics must exist (or AutoCreateTopics). Subscribe returns once the
// member's starting positions are fixed: for StartLatest it takes the end
// offsets of every partition first and starts partitions without a
// committed offset there (not at the end as of the later join, which would
// skip records produced in between). SessionTimeout, Instance (static
// membership: group.instance.id) and MaxPollInterval are honoured; a zero
// value takes the transport's default (SessionTimeout, MaxPollInterval
// options).
//
// OnRevoked is called from franz-go's group goroutine while the consumer's
// lock is held: partitions revoked in a rebalance, and every partition when
// the member is lost (its session expired) or dropped for its poll
// interval. It is not called on Close or when the member is fenced.
func (t *Transport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, errClosed
	}
	if s.Group == "" {
		return nil, fmt.Errorf("kafka: subscribe: empty group: %w", transport.ErrInvalid)
	}
	if len(s.Topics) == 0 {
		return nil, fmt.Errorf("kafka: subscribe %q: no topics: %w", s.Group, transport.ErrInvalid)
	}
	if s.SessionTimeout < 0 || s.MaxPollInterval < 0 {
		return nil, fmt.Errorf("kafka: subscribe %q: negative timeout: %w", s.Group, transport.ErrInvalid)
	}
	s.Topics = slices.Clone(s.Topics)
	if err := t.checkTopics(ctx, s.Topics); err != nil {
		return nil, fmt.Errorf("kafka: subscribe %q: %w", s.Group, err)
	}
	c := &consumer{t: t, sub: s, instance: s.Instance, session: s.SessionTimeout, maxPoll: s.MaxPollInterval}
	if c.session == 0 {
		c.session = t.o.sessionTimeout
	}
	if c.maxPoll == 0 {
		c.maxPoll = t.o.maxPollInterval
	}
	c.heart = min(t.o.heartbeat, c.session/5)
	if s.Start == transport.StartLatest {
		ends, err := t.endOffsets(ctx, s.Topics)
		if err != nil {
			return nil, fmt.Errorf("kafka: subscribe %q: %w", s.Group, err)
		}
		t.pin(s.Group, ends)
	}
	c.stop, c.stopNow = context.WithCancel(context.Background())
	c.assigned = make(map[transport.TopicPartition]int64)
	if err := c.register(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	err := c.joinLocked()
	joined, owns := c.joined, c.owns
	c.mu.Unlock()
	if err != nil {
		c.unregister()
		c.stopNow()
		return nil, fmt.Errorf("kafka: subscribe %q: %w", s.Group, err)
	}
	// Wait until the group has rebalanced over the new member, so members
	// subscribed one after the other share the partitions at once, as on
	// the embedded broker. With cooperative rebalancing a new member gets
	// its partitions in the second round, once their old owner revoked
	// them: wait for a non-empty assignment, unless the group has more
	// members than partitions. Positions are fixed either way, so a slow
	// join (Apache Kafka waits group.initial.rebalance.delay.ms, 3 s, for a
	// new group) past the setup timeout is not an error; ctx ending is.
	wait := time.NewTimer(t.o.setupTimeout)
	defer wait.Stop()
	fail := func() (transport.Consumer, error) {
		_ = c.Close()
		return nil, fmt.Errorf("kafka: subscribe %q: waiting for the group to assign partitions: %w", s.Group, ctx.Err())
	}
	select {
	case <-joined:
	case <-wait.C:
		return c, nil
	case <-ctx.Done():
		return fail()
	}
	select {
	case <-owns:
		return c, nil
	default:
	}
	if t.moreMembersThanPartitions(ctx, s) {
		return c, nil
	}
	select {
	case <-owns:
	case <-wait.C:
	case <-ctx.Done():
		return fail()
	}
	return c, nil
}

// moreMembersThanPartitions reports whether s.Group has at least as many
// members as s.Topics have partitions, so a new member may own none.
func (t *Transport) moreMembersThanPartitions(ctx context.Context, s transport.Subscription) bool {
	total := 0
	for _, topic := range s.Topics {
		n, err := t.partitions(ctx, topic)
		if err != nil {
			return true
		}
		total += int(n)
	}
	gs, err := t.adm.DescribeGroups(ctx, s.Group)
	if err != nil {
		return true
	}
	g, ok := gs[s.Group]
	return !ok || g.Err != nil || len(g.Members) > total
}

// pin records, for group, the offset where StartLatest starts each
// partition that has no committed offset: the first one seen by this
// transport wins, so a later member of the group does not skip records an
// earlier one was meant to read.
func (t *Transport) pin(group string, ends map[string]map[int32]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.pins[group]
	if g == nil {
		g = make(map[string]map[int32]int64)
		t.pins[group] = g
	}
	for topic, ps := range ends {
		if g[topic] == nil {
			g[topic] = make(map[int32]int64)
		}
		for p, o := range ps {
			if _, ok := g[topic][p]; !ok {
				g[topic][p] = o
			}
		}
	}
}

func (t *Transport) pinned(group, topic string, p int32) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.pins[group][topic][p]
	return o, ok
}

func (c *consumer) register() error {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.t.closed {
		return errClosed
	}
	c.t.consumers[c] = struct{}{}
	return nil
}

func (c *consumer) unregister() {
	c.t.mu.Lock()
	delete(c.t.consumers, c)
	c.t.mu.Unlock()
}

// joinLocked makes the member's franz-go client, which joins the group in
// the background. c.mu is held.
func (c *consumer) joinLocked() error {
	s := c.sub
	reset := kgo.NewOffset().AtEnd()
	if s.Start == transport.StartEarliest {
		reset = kgo.NewOffset().AtStart()
	}
	opts := append(c.t.clientOpts(),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeTopics(s.Topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(c.session),
		kgo.HeartbeatInterval(c.heart),
		kgo.RebalanceTimeout(max(c.session, 10*time.Second)),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.AdjustFetchOffsetsFn(c.adjust),
		kgo.WithHooks(fenceHook{c}),
	)
	if c.instance != "" {
		opts = append(opts, kgo.InstanceID(c.instance))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	c.cl, c.dropped = cl, false
	c.joined = make(chan struct{})
	c.owns = make(chan struct{})
	c.lastPoll = time.Now()
	c.armLocked()
	return nil
}

// armLocked (re)starts the max-poll-interval timer. c.mu is held.
func (c *consumer) armLocked() {
	if c.timer != nil {
		c.timer.Stop()
	}
	cl := c.cl
	c.timer = time.AfterFunc(c.maxPoll, func() { c.expire(cl) })
}

// expire drops the member if it has not polled within its max poll
// interval: its partitions are revoked (OnRevoked), it leaves the group so
// they move at once, and its next Poll joins again.
func (c *consumer) expire(cl *kgo.Client) {
	c.mu.Lock()
	if c.closed || c.fenced || c.cl != cl {
		c.mu.Unlock()
		return
	}
	if c.polling > 0 { // a Poll in progress counts as polling
		c.timer = time.AfterFunc(c.maxPoll, func() { c.expire(cl) })
		c.mu.Unlock()
		return
	}
	if idle := time.Since(c.lastPoll); idle < c.maxPoll {
		c.timer = time.AfterFunc(c.maxPoll-idle, func() { c.expire(cl) })
		c.mu.Unlock()
		return
	}
	c.dropped = true
	c.cl = nil
	c.revokeAllLocked()
	c.mu.Unlock()
	c.leave(cl)
}

// revokeAllLocked forgets every assigned partition and reports them to
// OnRevoked. c.mu is held.
func (c *consumer) revokeAllLocked() {
	tps := make([]transport.TopicPartition, 0, len(c.assigned))
	for tp := range c.assigned {
		tps = append(tps, tp)
	}
	clear(c.assigned)
	if len(tps) > 0 && c.sub.OnRevoked != nil {
		sortTPs(tps)
		c.sub.OnRevoked(tps)
	}
}

// leave closes cl and, for a static member, removes its instance from the
// group: franz-go's Close does not leave for a static member, which would
// hold its partitions until the session timeout.
//
// The LeaveGroup names the member id along with the instance id: the
// broker removes whichever member holds the instance id when the member id
// is empty, so a member replaced by a newer process (which it learns of only
// at its next heartbeat) would otherwise evict that live member. With both,
// the broker refuses it (FENCED_INSTANCE_ID) when the instance has moved on.
// A member that never joined leaves by instance id alone, removing a
// crashed predecessor's registration.
func (c *consumer) leave(cl *kgo.Client) {
	member, _ := cl.GroupMetadata()
	cl.Close()
	if c.instance == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if member == "" {
		_, _ = c.t.adm.LeaveGroup(ctx, kadm.LeaveGroup(c.sub.Group).InstanceIDs(c.instance).Reason("kafkarpc consumer closed"))
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = c.sub.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID, m.InstanceID, m.Reason = member, kmsg.StringPtr(c.instance), kmsg.StringPtr("kafkarpc consumer closed")
	req.Members = append(req.Members, m)
	_, _ = req.RequestWith(ctx, c.t.cl)
}

func toMap(m map[string][]int32) []transport.TopicPartition {
	var out []transport.TopicPartition
	for topic, ps := range m {
		for _, p := range ps {
			out = append(out, transport.TopicPartition{Topic: topic, Partition: p})
		}
	}
	sortTPs(out)
	return out
}

func sortTPs(tps []transport.TopicPartition) {
	slices.SortFunc(tps, func(a, b transport.TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
}

// current reports whether cl is the member's client and it is in use.
func (c *consumer) currentLocked(cl *kgo.Client) bool {
	return c.cl == cl && !c.closed && !c.fenced
}

func (c *consumer) onAssigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.currentLocked(cl) {
		return
	}
	if c.instance != "" && len(m) > 0 && !isClosed(c.joined) {
		// The first assignment of a static member: the partitions may
		// come from an earlier live process with the same instance id,
		// which the broker replaced without a rebalance (no revoke tells
		// it). It learns at its next heartbeat (or sooner, at a commit)
		// and stops dispatching; until then it may run what it fetches,
		// which this member would read too from the committed offset. So
		// this member returns no records for one heartbeat interval (the
		// group's members are taken to share the HeartbeatInterval
		// option): what the old one started by then is at most its
		// in-flight work. The option's value, not c.heart: a member with a
		// shorter session timeout than its predecessor heartbeats more
		// often than it, and a hold of its own interval ended before the
		// predecessor learned (TestBreak9ReplacementWithShorterSession).
		c.holdUntil = time.Now().Add(c.t.o.heartbeat)
	}
	for _, tp := range toMap(m) {
		if _, ok := c.assigned[tp]; !ok {
			// Where the assignment begins is known only once franz-go
			// has fetched the committed offset (adjust); until then a
			// commit of the partition is refused, or a late commit of a
			// record from an earlier assignment would pass and move the
			// group's offset back.
			c.assigned[tp] = startUnknown
		}
	}
	closeOnce(c.joined)
	if len(c.assigned) > 0 {
		closeOnce(c.owns)
	}
}

// startUnknown marks an assigned partition whose starting offset is not
// yet fetched: nothing of this assignment can have been polled from it, so
// Commit refuses it.
const startUnknown = -1

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// adjust starts partitions without a committed offset at the pinned end
// offset for StartLatest, and records where each assignment begins.
func (c *consumer) adjust(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range offsets {
		for p, o := range ps {
			at := o.EpochOffset().Offset
			if at < 0 && c.sub.Start == transport.StartLatest {
				if pin, ok := c.t.pinned(c.sub.Group, topic, p); ok {
					o = kgo.NewOffset().At(pin).WithEpoch(-1)
					ps[p] = o
					at = pin
				}
			}
			tp := transport.TopicPartition{Topic: topic, Partition: p}
			if _, ok := c.assigned[tp]; ok {
				c.assigned[tp] = max(at, 0)
			}
		}
	}
	return offsets, nil
}

func (c *consumer) onRevoked(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.currentLocked(cl) || cl.Context().Err() != nil {
		return // closing: Close does not report revocations
	}
	c.revokeLocked(toMap(m))
}

func (c *consumer) onLost(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.currentLocked(cl) || cl.Context().Err() != nil {
		return
	}
	c.revokeLocked(toMap(m))
}

func (c *consumer) revokeLocked(tps []transport.TopicPartition) {
	var gone []transport.TopicPartition
	for _, tp := range tps {
		if _, ok := c.assigned[tp]; ok {
			delete(c.assigned, tp)
			gone = append(gone, tp)
		}
	}
	if len(gone) > 0 && c.sub.OnRevoked != nil {
		c.sub.OnRevoked(gone)
	}
}

// fenceHook learns from franz-go's group loop that another member took
// this member's instance id (FENCED_INSTANCE_ID). The member then stops
// for good: its client is closed at once, so it does not rejoin and fence
// the newer instance in turn.
type fenceHook struct{ c *consumer }

func (h fenceHook) OnGroupManageError(err error) {
	if !errors.Is(err, kerr.FencedInstanceID) {
		return
	}
	h.c.fence()
}

// fence stops the member for good once the broker said another member took
// its instance id (at a heartbeat, or answering a commit).
func (c *consumer) fence() {
	c.mu.Lock()
	if c.fenced || c.closed {
		c.mu.Unlock()
		return
	}
	c.fenced = true
	cl := c.cl
	c.cl = nil // closed here, once: two concurrent kgo Closes race inside franz-go
	clear(c.assigned)
	if c.timer != nil {
		c.timer.Stop()
	}
	done := make(chan struct{})
	c.fenceClosed = done
	c.mu.Unlock()
	c.stopNow()
	if cl == nil {
		close(done)
		return
	}
	go func() { // not here: kgo's Close waits for the goroutine running the hook
		cl.Close()
		close(done)
	}()
}

var _ kgo.HookGroupManageError = fenceHook{}

// Poll returns records of the member's partitions, waiting up to the
// transport's PollWindow (then it returns none and a nil error). Records
// of partitions revoked meanwhile are dropped: their next owner reads them
// from the committed offset. A member dropped for its max poll interval
// joins again here.
func (c *consumer) Poll(ctx context.Context) ([]transport.Message, error) {
	c.mu.Lock()
	if err := c.endedLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if c.dropped {
		if err := c.joinLocked(); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("kafka: rejoin %q: %w", c.sub.Group, err)
		}
	}
	cl, joined := c.cl, c.joined
	c.polling++
	c.mu.Unlock()
	if c.sub.Group == "" {
		c.tailNewPartitions(ctx, cl)
	}
	defer func() {
		c.mu.Lock()
		c.polling--
		c.lastPoll = time.Now()
		c.mu.Unlock()
	}()
	if c.instance != "" && !c.joinedWithin(ctx, joined) {
		return c.held(ctx)
	}
	c.mu.Lock()
	hold := c.holdUntil
	c.mu.Unlock()
	if wait := time.Until(hold); wait > 0 && !c.holdOver(ctx, min(wait, c.t.o.pollWindow)) {
		return c.held(ctx)
	}

	pctx, cancel := context.WithTimeout(ctx, c.t.o.pollWindow)
	defer cancel()
	stopWatch := context.AfterFunc(c.stop, cancel)
	defer stopWatch()
	fs := cl.PollRecords(pctx, c.t.o.maxPollRecords)

	c.mu.Lock()
	defer c.mu.Unlock()
	var out []transport.Message
	fs.EachRecord(func(r *kgo.Record) {
		if c.sub.Group != "" {
			if _, ok := c.assigned[transport.TopicPartition{Topic: r.Topic, Partition: r.Partition}]; !ok || c.cl != cl {
				return // revoked after it was fetched
			}
		}
		out = append(out, toMessage(r))
	})
	if err := c.endedLocked(); err != nil {
		return nil, err
	}
	switch {
	case len(out) > 0:
		return out, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	var perr error
	fs.EachError(func(_ string, _ int32, err error) {
		if perr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			perr = err
		}
	})
	var gs *kgo.ErrGroupSession
	if errors.As(perr, &gs) && !errors.Is(perr, kerr.FencedInstanceID) {
		// The group session ended (session expired, generation moved):
		// the member's partitions were lost (OnRevoked) and franz-go
		// rejoins by itself. Only refusals a retry cannot cure are
		// reported.
		if err := mapErr(perr); !errors.Is(err, transport.ErrPermissionDenied) && !errors.Is(err, transport.ErrUnauthenticated) {
			perr = nil
		}
	}
	if perr != nil {
		if errors.Is(perr, kgo.ErrClientClosed) {
			if c.t.isClosed() {
				return nil, errConsumerClosed
			}
			return nil, nil // replaced after its max poll interval: the next Poll rejoins
		}
		return nil, fmt.Errorf("kafka: poll: %w", mapErr(perr))
	}
	return nil, nil
}

// joinedWithin waits, at most a poll window, for the first assignment of
// a static member's client (joined) and reports whether it came; false when
// ctx or the consumer ended first. Nothing can be fetched before it, but a
// Poll that read the hold (see onAssigned) before it would return the
// records fetched right after it without holding them
// (TestBreak9HoldAppliesToAPollBegunBeforeTheAssignment).
func (c *consumer) joinedWithin(ctx context.Context, joined chan struct{}) bool {
	if isClosed(joined) {
		return true
	}
	came, _ := c.wait(ctx, joined, c.t.o.pollWindow)
	return came
}

// holdOver waits d (the rest of a static member's hold, see onAssigned, at
// most a poll window) and reports whether the hold is over; false when
// ctx or the consumer ended first.
func (c *consumer) holdOver(ctx context.Context, d time.Duration) bool {
	if _, passed := c.wait(ctx, nil, d); !passed {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !time.Now().Before(c.holdUntil)
}

// wait waits until ch is closed (came; a nil ch never is), d passes
// (passed), or ctx or the consumer ends (neither).
func (c *consumer) wait(ctx context.Context, ch <-chan struct{}, d time.Duration) (came, passed bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true, false
	case <-t.C:
		return false, true
	case <-ctx.Done():
	case <-c.stop.Done():
	}
	return false, false
}

// held is the answer of a Poll that returned during the hold.
func (c *consumer) held(ctx context.Context) ([]transport.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.endedLocked(); err != nil {
		return nil, err
	}
	return nil, ctx.Err()
}

// endedLocked is Poll's error once the consumer was closed or fenced, else
// nil. c.mu is held.
func (c *consumer) endedLocked() error {
	switch {
	case c.closed:
		return errConsumerClosed
	case c.fenced:
		return errFenced(c.instance)
	}
	return nil
}

// tailScanEvery is how often a tail looks for partitions added to its
// topics after Tail returned.
const tailScanEvery = time.Second

// tailNewPartitions adds to a tail the partitions created in its topics
// since Tail listed them, read from their start: every record in them was
// produced after Tail returned. franz-go's ConsumePartitions never picks up
// new partitions by itself, so without this a reply placed on a partition
// added later would never be delivered.
func (c *consumer) tailNewPartitions(ctx context.Context, cl *kgo.Client) {
	c.mu.Lock()
	if time.Since(c.scanned) < tailScanEvery {
		c.mu.Unlock()
		return
	}
	c.scanned = time.Now()
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.t.o.pollWindow)
	defer cancel()
	defer context.AfterFunc(c.stop, cancel)()
	add := make(map[string]map[int32]kgo.Offset)
	for _, topic := range c.sub.Topics {
		tm, err := c.t.loadMeta(ctx, topic)
		if err != nil {
			continue // tried again at the next scan
		}
		c.mu.Lock()
		for p := int32(0); p < tm.partitions; p++ {
			if _, ok := c.tailFrom[topic][p]; ok {
				continue
			}
			if c.tailFrom[topic] == nil {
				c.tailFrom[topic] = make(map[int32]kgo.Offset)
			}
			o := kgo.NewOffset().AtStart()
			c.tailFrom[topic][p] = o
			if add[topic] == nil {
				add[topic] = make(map[int32]kgo.Offset)
			}
			add[topic][p] = o
		}
		c.mu.Unlock()
	}
	if len(add) > 0 {
		cl.AddConsumePartitions(add)
	}
}

var errConsumerClosed = fmt.Errorf("kafka: consumer: %w", transport.ErrClosed)

func errFenced(instance string) error {
	return fmt.Errorf("kafka: instance %q joined again elsewhere: %w", instance, transport.ErrFenced)
}

func toMessage(r *kgo.Record) transport.Message {
	m := transport.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, Key: string(r.Key), Value: r.Value}
	if len(r.Headers) > 0 {
		m.Headers = make([]transport.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = transport.Header{Key: h.Key, Value: string(h.Value)}
		}
	}
	return m
}

// Commit stores, per partition, the highest offset among msgs plus one as
// the group's next offset. It commits with the member's generation, so a
// member that lost its partitions cannot overwrite a newer owner's
// progress; a partition not assigned to the member (or a commit below where
// its current assignment began) fails with transport.ErrNotAssigned. A
// rebalance that keeps the partitions is waited out and the commit retried
// within ctx. On a tail, Commit does nothing.
func (c *consumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	if c.sub.Group == "" {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return errConsumerClosed
		}
		return nil
	}
	if len(msgs) == 0 {
		return nil
	}
	next := make(map[transport.TopicPartition]int64)
	for _, m := range msgs {
		tp := transport.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		if o, ok := next[tp]; !ok || m.Offset+1 > o {
			next[tp] = m.Offset + 1
		}
	}
	for attempt := 0; ; attempt++ {
		req, err := c.commitRequest(ctx, next)
		if err != nil {
			return err
		}
		resp, err := req.RequestWith(ctx, c.clientOf())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kafka: commit %q: %w", c.sub.Group, c.t.mapErr(err))
		}
		var perr error
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil && perr == nil {
					perr = err
				}
			}
		}
		if perr == nil {
			return nil
		}
		switch {
		case errors.Is(perr, kerr.IllegalGeneration), errors.Is(perr, kerr.RebalanceInProgress),
			errors.Is(perr, kerr.UnknownMemberID), errors.Is(perr, kerr.NotCoordinator),
			errors.Is(perr, kerr.CoordinatorNotAvailable), errors.Is(perr, kerr.CoordinatorLoadInProgress):
			// The member's generation moved (or the coordinator did):
			// retry once the group settles, if the partitions are still
			// ours; commitRequest says ErrNotAssigned if they are not.
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafka: commit %q: %w (last: %w)", c.sub.Group, ctx.Err(), perr)
			case <-time.After(min(time.Duration(attempt+1)*20*time.Millisecond, 200*time.Millisecond)):
			}
		case errors.Is(perr, kerr.FencedInstanceID):
			// Replaced by a newer instance: stop now rather than at the
			// next heartbeat, so this member dispatches nothing more that
			// the new one is reading too.
			c.fence()
			return fmt.Errorf("%w: %w", errFenced(c.instance), transport.ErrNotAssigned)
		default:
			return fmt.Errorf("kafka: commit %q: %w", c.sub.Group, mapErr(perr))
		}
	}
}

func (c *consumer) clientOf() *kgo.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cl == nil {
		return c.t.cl
	}
	return c.cl
}

// commitRequest checks that every partition of next is assigned and builds
// the commit with the member's current generation.
func (c *consumer) commitRequest(ctx context.Context, next map[transport.TopicPartition]int64) (*kmsg.OffsetCommitRequest, error) {
	metas := make(map[string]topicMeta)
	for tp := range next {
		if _, ok := metas[tp.Topic]; !ok {
			tm, err := c.t.meta(ctx, tp.Topic)
			if err != nil {
				return nil, err
			}
			metas[tp.Topic] = tm
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, errConsumerClosed
	case c.fenced:
		return nil, fmt.Errorf("%w: %w", errFenced(c.instance), transport.ErrNotAssigned)
	case c.cl == nil:
		return nil, fmt.Errorf("kafka: commit %q: member dropped after its max poll interval: %w", c.sub.Group, transport.ErrNotAssigned)
	}
	member, gen := c.cl.GroupMetadata()
	if gen < 0 || member == "" {
		return nil, fmt.Errorf("kafka: commit %q: member is (re)joining the group: %w", c.sub.Group, transport.ErrNotAssigned)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID = c.sub.Group, gen, member
	if c.instance != "" {
		req.InstanceID = kmsg.StringPtr(c.instance)
	}
	byTopic := make(map[string]int)
	for tp, off := range next {
		start, ok := c.assigned[tp]
		if !ok {
			return nil, fmt.Errorf("kafka: commit %s[%d] in group %q: %w", tp.Topic, tp.Partition, c.sub.Group, transport.ErrNotAssigned)
		}
		if start == startUnknown {
			return nil, fmt.Errorf("kafka: commit %s[%d] in group %q: partition just assigned, its committed offset not yet fetched: %w",
				tp.Topic, tp.Partition, c.sub.Group, transport.ErrNotAssigned)
		}
		if off-1 < start {
			return nil, fmt.Errorf("kafka: commit %s[%d] offset %d in group %q: below %d, where this member's assignment began: %w",
				tp.Topic, tp.Partition, off-1, c.sub.Group, start, transport.ErrNotAssigned)
		}
		i, ok := byTopic[tp.Topic]
		if !ok {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic, rt.TopicID = tp.Topic, metas[tp.Topic].id
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			byTopic[tp.Topic] = i
		}
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = tp.Partition, off, -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	return req, nil
}

// Close leaves the group at once (a static member is removed with an
// explicit LeaveGroup for its instance id) and stops the member. Blocked
// Polls return ErrClosed. Idempotent.
func (c *consumer) Close() error {
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.closed = true
		cl := c.cl
		fenced := c.fenced
		fenceClosed := c.fenceClosed
		c.cl = nil
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		c.stopNow()
		if cl != nil {
			if fenced || c.sub.Group == "" {
				cl.Close()
			} else {
				c.leave(cl)
			}
		}
		if fenceClosed != nil {
			<-fenceClosed
		}
		c.unregister()
	})
	return nil
}

// Tail reads every partition of topics from their end offsets, listed
// before Tail returns (kadm ListEndOffsets), with a franz-go client of its
// own and no group: a record produced after Tail returns is delivered.
// Topics must exist (or AutoCreateTopics). Commit on the result does
// nothing.
func (t *Transport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, errClosed
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("kafka: tail: no topics: %w", transport.ErrInvalid)
	}
	if err := t.checkTopics(ctx, topics); err != nil {
		return nil, fmt.Errorf("kafka: tail: %w", err)
	}
	ends, err := t.endOffsets(ctx, topics)
	if err != nil {
		return nil, fmt.Errorf("kafka: tail: %w", err)
	}
	from := make(map[string]map[int32]kgo.Offset)
	for topic, ps := range ends {
		from[topic] = make(map[int32]kgo.Offset)
		for p, o := range ps {
			from[topic][p] = kgo.NewOffset().At(o)
		}
	}
	cl, err := kgo.NewClient(append(t.clientOpts(), kgo.ConsumePartitions(from))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: tail: %w", err)
	}
	c := &consumer{t: t, cl: cl, tailFrom: from, sub: transport.Subscription{Group: "", Topics: topics}, scanned: time.Now()}
	c.stop, c.stopNow = context.WithCancel(context.Background())
	c.maxPoll = time.Duration(1<<63 - 1)
	if err := c.register(); err != nil {
		cl.Close()
		return nil, err
	}
	return c, nil
}
