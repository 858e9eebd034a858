package kafkabackend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
)

// member is one REST consumer instance: a kgo client of its own, in group
// Subscription.Group with group.instance.id = Subscription.Instance (static
// membership), auto-commit off (the REST server decides when to commit).
//
// Where each partition of the member's assignment began is pinned when it
// is assigned (AdjustFetchOffsetsFn): the committed offset, or for a
// partition without one the exact end (or start) offset listed then,
// never kgo's asynchronous AtEnd, so a record produced after Subscribe
// returns is read. That offset is the floor of fenced commits.
type member struct {
	b     *Backend
	cl    *kgo.Client
	sub   transport.Subscription
	ready chan struct{} // closed when the first assignment is fixed
	once  sync.Once

	pollMu sync.Mutex // one Poll at a time
	stash  []transport.Message

	mu        sync.Mutex
	owned     map[transport.TopicPartition]int64 // -> offset where the assignment began
	pos       map[transport.TopicPartition]int64 // next offset after the last polled record
	committed map[transport.TopicPartition]int64 // last offset committed by this member
	starts    map[transport.TopicPartition]int64 // latest starts of uncommitted partitions, to commit
	// strict: SubscribeCommitted's member, until its first assignment is
	// accepted; partitions assigned meanwhile without a committed offset,
	// or with one past their end, go to missing (not to starts), those
	// whose end could not be listed to unchecked.
	strict    bool
	missing   map[transport.TopicPartition]struct{}
	unchecked map[transport.TopicPartition]struct{}
	fenced    bool
	closed    bool
	closeErr  error
	closeOnce sync.Once
}

var (
	_ restserver.Member              = (*member)(nil)
	_ restserver.CommittedSubscriber = (*Backend)(nil)
)

// Subscribe joins s.Group with its own client, as static member
// s.Instance, and returns when the member's first assignment has its start
// offsets fixed (possibly an empty assignment, when other members hold
// every partition), or fails when ctx ends first. Unknown topics fail at
// once with transport.ErrUnknownTopic (from metadata: a group subscribed to
// a missing topic would wait forever). s.Start chooses where a partition
// without a committed offset begins (Upstash's default is latest).
//
// The member heartbeats in the background with s.SessionTimeout (the
// brokers' group.min/max.session.timeout.ms bound it: outside them the join
// fails with transport.ErrInvalid). Kafka has no max.poll.interval for kgo
// clients, so s.MaxPollInterval is not enforced here: the REST server's
// idle expiry closes an instance that stops asking, and Close leaves the
// group at once (LeaveGroup by instance id, as a static member's Close alone
// would not).
func (b *Backend) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	m, _, err := b.subscribe(ctx, s, false)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// SubscribeCommitted makes the backend a [restserver.CommittedSubscriber]
// (Kafka-Auto-Offset-Reset: none): it joins as Subscribe does, but when a
// partition of the first assignment has no committed offset, or one past
// the partition's end (listed at the join; Subscribe's member, as kgo,
// resets it by s.Start), it commits nothing (Subscribe commits the latest
// start of a partition without one) and returns those partitions, having
// closed the member, which leaves the group. When that end cannot be
// listed, the join fails the same way with an error wrapping
// restserver.ErrUnavailable.
func (b *Backend) SubscribeCommitted(ctx context.Context, s transport.Subscription) (transport.Consumer, []transport.TopicPartition, error) {
	m, missing, err := b.subscribe(ctx, s, true)
	if err != nil || len(missing) > 0 {
		return nil, missing, err
	}
	return m, nil, nil
}

func (b *Backend) subscribe(ctx context.Context, s transport.Subscription, strict bool) (_ *member, _ []transport.TopicPartition, err error) {
	defer b.reach.explain("subscribe", &err)
	const what = "subscribe"
	if err := b.errIfClosed(what); err != nil {
		return nil, nil, err
	}
	if s.Group == "" || len(s.Topics) == 0 {
		return nil, nil, fmt.Errorf("kafkabackend: subscribe: a group and at least one topic are required: %w", transport.ErrInvalid)
	}
	for _, t := range s.Topics {
		if b.cfg.autoCreate > 0 {
			if _, err := b.meta.partitions(ctx, t, false); isUnknownTopic(err) {
				if err := legalTopic(t); err != nil {
					return nil, nil, err
				}
			}
		}
		if _, err := b.meta.creating(ctx, t, false); err != nil {
			return nil, nil, mapErr(fmt.Sprintf("subscribe to %q", t), err)
		}
	}
	m := &member{
		b: b, sub: s, ready: make(chan struct{}),
		owned: map[transport.TopicPartition]int64{}, pos: map[transport.TopicPartition]int64{},
		committed: map[transport.TopicPartition]int64{}, starts: map[transport.TopicPartition]int64{},
		strict: strict, missing: map[transport.TopicPartition]struct{}{}, unchecked: map[transport.TopicPartition]struct{}{},
	}
	reset := kgo.NewOffset().AtEnd()
	if s.Start == transport.StartEarliest {
		reset = kgo.NewOffset().AtStart()
	}
	opts := append(append([]kgo.Opt(nil), b.base...),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeTopics(s.Topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		// A topic created just before the join (auto-creation, or by the
		// client's first produce) must not wait out kgo's default 5 s
		// between metadata loads before it is fetched.
		kgo.MetadataMinAge(100*time.Millisecond),
		// Eager range assignment: a joining member's Subscribe returns with
		// its share after one rebalance round. (Cooperative-sticky would
		// hand the newcomer partitions in a second round after Subscribe
		// returned, and records the old owner had polled would be read
		// twice. Range splits as the embedded broker does.)
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchMaxBytes(8<<20), // bounds what an instance buffers between consumes
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(m.onRevoked),
		kgo.OnPartitionsLost(m.onLost),
		kgo.AdjustFetchOffsetsFn(m.adjust),
	)
	if s.Instance != "" {
		opts = append(opts, kgo.InstanceID(s.Instance))
	}
	if s.SessionTimeout > 0 {
		// Heartbeat at least three times a session (kgo refuses a heartbeat
		// interval above the session timeout), and at least every second, so
		// a rebalance started by another member is seen quickly.
		opts = append(opts, kgo.SessionTimeout(s.SessionTimeout), kgo.HeartbeatInterval(min(s.SessionTimeout/3, time.Second)))
	} else {
		opts = append(opts, kgo.HeartbeatInterval(time.Second))
	}
	// kgo retries a group request failing with a retriable error (the
	// coordinator moving or loading) for the session timeout, up to the
	// 24 days Kafka-Session-Timeout-Ms allows, and its Close waits for that
	// retry loop: a join stuck on NOT_COORDINATOR held a consume, a delete
	// or the idle janitor for the whole session (45 s by default). Bound
	// the retries by the leave timeout; the group loop then rejoins.
	session := s.SessionTimeout
	if session <= 0 {
		session = 45 * time.Second
	}
	groupRetry := min(session, b.cfg.leaveTimeout)
	opts = append(opts, kgo.RetryTimeoutFn(func(key int16) time.Duration {
		switch key {
		case (&kmsg.JoinGroupRequest{}).Key(), (&kmsg.SyncGroupRequest{}).Key(), (&kmsg.HeartbeatRequest{}).Key():
			return groupRetry
		}
		return 30 * time.Second
	}))
	opts = append(opts, b.cfg.clientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafkabackend: subscribe: %w: %w", err, transport.ErrInvalid)
	}
	m.cl = cl
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cl.Close()
		return nil, nil, fmt.Errorf("kafkabackend: subscribe: %w", transport.ErrClosed)
	}
	b.members[m] = struct{}{}
	b.mu.Unlock()

	// Wait for the first assignment. Polling meanwhile is how kgo reports a
	// failed join (an invalid session timeout, say); records polled before
	// the assignment is fixed are kept for the first Poll.
	for {
		select {
		case <-m.ready:
			if missing, err := m.accept(); len(missing) > 0 || err != nil {
				_ = m.Close()
				return nil, missing, err
			}
			if err := m.commitStarts(ctx); err != nil {
				_ = m.Close()
				return nil, nil, err
			}
			return m, nil, nil
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		msgs, err := m.pollOnce(pctx)
		cancel()
		m.stash = append(m.stash, msgs...)
		var rejoin rejoinError
		if err == nil || (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &rejoin)) && ctx.Err() == nil {
			continue // a rejoin (the group dropped the member or rebalanced during the join): kgo joins again
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("kafkabackend: subscribe: the group %q did not assign partitions in time: %w", s.Group, ctx.Err())
		}
		_ = m.Close()
		return nil, nil, err
	}
}

func (m *member) setReady() { m.once.Do(func() { close(m.ready) }) }

// accept ends a strict member's first assignment: it returns the
// partitions assigned without a committed offset or with one past their
// end, sorted; else an error wrapping restserver.ErrUnavailable when the
// end of a committed partition could not be listed (the commit could not
// be checked: refused for now, not taken on trust); or, when neither,
// makes later partitions start as a member of Subscribe's does.
func (m *member) accept() ([]transport.TopicPartition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.strict {
		return nil, nil
	}
	byTopicPartition := func(x, y transport.TopicPartition) int {
		return cmp.Or(strings.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	}
	if len(m.missing) > 0 {
		return slices.SortedFunc(maps.Keys(m.missing), byTopicPartition), nil
	}
	if len(m.unchecked) > 0 {
		tp := slices.SortedFunc(maps.Keys(m.unchecked), byTopicPartition)[0]
		return nil, fmt.Errorf("kafkabackend: subscribe to group %q with no offset reset: the end offset of topic %q partition %d could not be listed to check its committed offset against: %w",
			m.sub.Group, tp.Topic, tp.Partition, restserver.ErrUnavailable)
	}
	m.strict = false
	return nil, nil
}

func (m *member) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	n := 0
	for _, ps := range assigned {
		n += len(ps)
	}
	if n == 0 {
		m.setReady() // nothing new: no offsets to fix
	}
}

// adjust pins each newly assigned partition's start: its committed offset,
// or the exact start/end offset listed now. A strict member also lists the
// start and end offsets of its committed partitions: one committed past its
// end, or before its start (retention deleted records from there on), is
// refused, as one without a commit is (Kafka with auto.offset.reset=none
// fails the fetch with OFFSET_OUT_OF_RANGE; kgo would reset it to the end).
func (m *member) adjust(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	defer m.setReady()
	m.mu.Lock()
	strict := m.strict
	m.mu.Unlock()
	earliest := m.sub.Start == transport.StartEarliest
	var needStarts, needEnds []string
	for t, ps := range offs {
		uncommitted, committed := false, false
		for _, o := range ps {
			if o.EpochOffset().Offset < 0 {
				uncommitted = true
			} else {
				committed = true
			}
		}
		if uncommitted && earliest || committed && strict {
			needStarts = append(needStarts, t)
		}
		if uncommitted && !earliest || committed && strict {
			needEnds = append(needEnds, t)
		}
	}
	// On a failed listing, kgo resolves the reset offsets itself; the
	// partitions are still noted below (a strict member's uncommitted ones
	// refused, its committed ones unchecked, the committed ones owned).
	adm := m.b.adm // m.cl may not be set yet: kgo starts joining in NewClient
	var starts, ends kadm.ListedOffsets
	if len(needStarts) > 0 {
		if lo, err := adm.ListStartOffsets(ctx, needStarts...); err == nil {
			starts = lo
		}
	}
	if len(needEnds) > 0 {
		if lo, err := adm.ListEndOffsets(ctx, needEnds...); err == nil {
			ends = lo
		}
	}
	resets := ends
	if earliest {
		resets = starts
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, ps := range offs {
		for p, o := range ps {
			tp := transport.TopicPartition{Topic: t, Partition: p}
			at := o.EpochOffset().Offset
			if at >= 0 {
				m.committed[tp] = at // the group's committed offset
				if m.strict {
					start, sok := starts.Lookup(t, p)
					if end, ok := ends.Lookup(t, p); !ok || end.Err != nil || !sok || start.Err != nil {
						m.unchecked[tp] = struct{}{}
					} else if at > end.Offset || at < start.Offset {
						m.missing[tp] = struct{}{} // refused: kgo would reset it
					}
				}
			} else {
				if m.strict {
					m.missing[tp] = struct{}{} // refused: its start is not committed
				}
				lo, ok := resets.Lookup(t, p)
				if !ok || lo.Err != nil {
					// kgo resolves the start. The partition is owned all
					// the same (Poll drops the records of a partition not
					// owned), where its assignment began unknown (-1) and
					// its position set by its first record.
					m.owned[tp] = -1
					continue
				}
				at = lo.Offset
				ps[p] = kgo.NewOffset().At(at).WithEpoch(-1)
				if !earliest && !m.strict {
					m.starts[tp] = at
				}
			}
			m.owned[tp] = at
			m.pos[tp] = at
		}
	}
	return offs, nil
}

func (m *member) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	m.drop(revoked, true)
}

func (m *member) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	m.drop(lost, true)
}

func (m *member) drop(parts map[string][]int32, notify bool) {
	var tps []transport.TopicPartition
	m.mu.Lock()
	closed := m.closed
	for t, ps := range parts {
		for _, p := range ps {
			tp := transport.TopicPartition{Topic: t, Partition: p}
			if _, ok := m.owned[tp]; ok {
				tps = append(tps, tp)
			}
			delete(m.owned, tp)
			delete(m.pos, tp)
			delete(m.committed, tp)
			delete(m.starts, tp)
			delete(m.missing, tp)
			delete(m.unchecked, tp)
		}
	}
	m.mu.Unlock()
	if notify && !closed && len(tps) > 0 && m.sub.OnRevoked != nil {
		m.sub.OnRevoked(tps)
	}
}

// Poll returns the records kgo has for the member's partitions, up to
// WithMaxPollRecords, waiting until some arrive or ctx ends (then ctx.Err(),
// with nothing taken: records kgo fetched stay buffered for the next Poll).
// Polls are serialized.
func (m *member) Poll(ctx context.Context) ([]transport.Message, error) {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	if err := m.state("poll"); err != nil {
		return nil, err
	}
	if err := m.commitStarts(ctx); err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(m.stash) > 0 {
		out := m.stash
		m.stash = nil
		m.advance(out)
		return out, nil
	}
	msgs, err := m.pollOnce(ctx)
	if len(msgs) > 0 {
		m.advance(msgs)
		return msgs, nil
	}
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil && errors.Is(err, restserver.ErrUnavailable) {
		return nil, nil // a transient group or fetch error: an empty poll; the caller polls again
	}
	return nil, err
}

// pollOnce polls kgo once and converts what it returns; records of
// partitions the member no longer owns are dropped. Errors are mapped.
func (m *member) pollOnce(ctx context.Context) ([]transport.Message, error) {
	fs := m.cl.PollRecords(ctx, m.b.cfg.maxPollRecords)
	var firstErr error
	fs.EachError(func(t string, p int32, err error) {
		if firstErr == nil {
			firstErr = err
		}
	})
	var recs []*kgo.Record
	m.mu.Lock()
	fs.EachRecord(func(r *kgo.Record) {
		if _, ok := m.owned[transport.TopicPartition{Topic: r.Topic, Partition: r.Partition}]; ok {
			recs = append(recs, r)
		}
	})
	m.mu.Unlock()
	msgs := toMessages(recs)
	if firstErr == nil {
		return msgs, nil
	}
	switch {
	case errors.Is(firstErr, context.Canceled), errors.Is(firstErr, context.DeadlineExceeded):
		return msgs, firstErr
	case errors.Is(firstErr, kgo.ErrClientClosed):
		return msgs, fmt.Errorf("kafkabackend: poll: %w", transport.ErrClosed)
	case errors.Is(firstErr, kerr.FencedInstanceID):
		m.mu.Lock()
		m.fenced = true
		m.mu.Unlock()
	case errors.Is(firstErr, kerr.UnknownMemberID), errors.Is(firstErr, kerr.IllegalGeneration),
		errors.Is(firstErr, kerr.RebalanceInProgress):
		// The group dropped the member (a missed session) or is
		// rebalancing: kgo rejoins by itself, and commits fail meanwhile.
		// For a poll this is only a window without records.
		return msgs, rejoinError{fmt.Errorf("kafkabackend: poll of group %q: rejoining (%v): %w", m.sub.Group, firstErr, restserver.ErrUnavailable)}
	}
	return msgs, mapErr(fmt.Sprintf("poll of group %q", m.sub.Group), firstErr)
}

// rejoinError is pollOnce's error when the group dropped the member or is
// rebalancing: kgo rejoins by itself. A Poll takes it for a window without
// records, and the wait for the first assignment waits on through it (it
// closed the member and answered 503: a join met by another member's join
// or leave failed).
type rejoinError struct{ err error }

func (e rejoinError) Error() string { return e.err.Error() }
func (e rejoinError) Unwrap() error { return e.err }

// advance moves the positions past msgs.
func (m *member) advance(msgs []transport.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range msgs {
		tp := transport.TopicPartition{Topic: msg.Topic, Partition: msg.Partition}
		if _, ok := m.owned[tp]; ok && msg.Offset+1 > m.pos[tp] {
			m.pos[tp] = msg.Offset + 1
		}
	}
}

// commitStarts commits the pinned latest starts of partitions assigned
// without a committed offset. Kafka starts such a partition at the reset
// offset again when it moves to another member before anything was
// committed, so records produced meanwhile would be skipped; committing
// where the member began makes the group's start durable, as the embedded
// broker's is. Earliest starts need no commit: a new owner starts there
// too.
func (m *member) commitStarts(ctx context.Context) error {
	m.mu.Lock()
	if len(m.starts) == 0 {
		m.mu.Unlock()
		return nil
	}
	offs := make([]transport.Offset, 0, len(m.starts))
	for tp, o := range m.starts {
		offs = append(offs, transport.Offset{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	m.mu.Unlock()
	return m.commit(ctx, offs, false)
}

func (m *member) state(what string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return fmt.Errorf("kafkabackend: %s: %w", what, transport.ErrClosed)
	case m.fenced:
		return fmt.Errorf("kafkabackend: %s: instance %q of group %q: %w", what, m.sub.Instance, m.sub.Group, transport.ErrFenced)
	}
	return nil
}

// Commit commits (highest offset of msgs per partition) + 1 for owned
// partitions; see transport.Consumer.
func (m *member) Commit(ctx context.Context, msgs ...transport.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	hi := map[transport.TopicPartition]int64{}
	for _, msg := range msgs {
		tp := transport.TopicPartition{Topic: msg.Topic, Partition: msg.Partition}
		if o, ok := hi[tp]; !ok || msg.Offset+1 > o {
			hi[tp] = msg.Offset + 1
		}
	}
	offs := make([]transport.Offset, 0, len(hi))
	for tp, o := range hi {
		offs = append(offs, transport.Offset{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	return m.commit(ctx, offs, true)
}

// CommitOffsets commits offs as given, through the member's own client
// (an admin commit to an active group would not stick). A partition the
// member does not own now is refused (transport.ErrNotAssigned): the
// classic protocol would accept it and rewind another member's work.
func (m *member) CommitOffsets(ctx context.Context, offs ...transport.Offset) error {
	return m.commit(ctx, offs, false)
}

// CommitOffsetsFenced is CommitOffsets, also refusing an offset below where
// the member's current assignment of its partition began.
func (m *member) CommitOffsetsFenced(ctx context.Context, offs ...transport.Offset) error {
	return m.commit(ctx, offs, true)
}

// CommitPositions commits the offsets after the last records Poll returned,
// for owned partitions whose position differs from what this member last
// committed (an explicit commit past the position is brought back to it,
// as the embedded broker does).
func (m *member) CommitPositions(ctx context.Context) error {
	m.mu.Lock()
	var offs []transport.Offset
	for tp, p := range m.pos {
		if c, ok := m.committed[tp]; !ok || p != c {
			offs = append(offs, transport.Offset{Topic: tp.Topic, Partition: tp.Partition, Offset: p})
		}
	}
	m.mu.Unlock()
	if len(offs) == 0 {
		return m.state("commit")
	}
	return m.commit(ctx, offs, false)
}

func (m *member) commit(ctx context.Context, offs []transport.Offset, fenced bool) error {
	if err := m.state("commit"); err != nil {
		if errors.Is(err, transport.ErrFenced) {
			return fmt.Errorf("%w: %w", err, transport.ErrNotAssigned)
		}
		return err
	}
	if len(offs) == 0 {
		return nil
	}
	req := map[string]map[int32]kgo.EpochOffset{}
	m.mu.Lock()
	for _, o := range offs {
		tp := transport.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		begin, ok := m.owned[tp]
		if !ok {
			m.mu.Unlock()
			return fmt.Errorf("kafkabackend: commit topic %q partition %d: instance %q of group %q does not own it now: %w",
				o.Topic, o.Partition, m.sub.Instance, m.sub.Group, transport.ErrNotAssigned)
		}
		if fenced && o.Offset < begin {
			m.mu.Unlock()
			return fmt.Errorf("kafkabackend: commit topic %q partition %d offset %d: below %d, where the member's current assignment of it began: %w",
				o.Topic, o.Partition, o.Offset, begin, transport.ErrNotAssigned)
		}
		if req[o.Topic] == nil {
			req[o.Topic] = map[int32]kgo.EpochOffset{}
		}
		req[o.Topic][o.Partition] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
	}
	m.mu.Unlock()
	var cerr error
	m.cl.CommitOffsetsSync(ctx, req, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && cerr == nil {
					cerr = e
				}
			}
		}
	})
	if cerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.b.cfg.log.Debug("kafkabackend: commit failed", "group", m.sub.Group, "instance", m.sub.Instance, "err", cerr)
		return mapErr(fmt.Sprintf("commit of instance %q of group %q", m.sub.Instance, m.sub.Group), cerr)
	}
	m.mu.Lock()
	for _, o := range offs {
		tp := transport.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		if _, ok := m.owned[tp]; ok {
			m.committed[tp] = o.Offset
			delete(m.starts, tp)
		}
	}
	m.mu.Unlock()
	return nil
}

// Assignment returns the partitions the member owns now.
func (m *member) Assignment() map[string][]int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]int32{}
	for tp := range m.owned {
		out[tp.Topic] = append(out[tp.Topic], tp.Partition)
	}
	return out
}

// Close closes the member's client and then leaves the group by instance
// id (kadm LeaveGroup: with a static member, closing the client alone keeps
// its partitions until the session timeout), so its partitions move to the
// other members at once. It commits nothing (the REST server commits
// first when auto-commit is on). Idempotent; it returns the leave's error,
// if any, each time.
func (m *member) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		fenced := m.fenced
		m.mu.Unlock()
		m.setReady()
		// kgo's Close waits for its group loop, which may be inside a
		// JoinGroup the coordinator holds for up to the rebalance timeout
		// (a slow broker): a consume whose instance was deleted during its
		// join, or a delete, hung that long. Wait at most the leave
		// timeout; the client finishes closing in the background (Backend
		// Close waits for it).
		clientClosed := make(chan struct{})
		m.b.bg.Go(func() { m.cl.Close(); close(clientClosed) })
		select {
		case <-clientClosed:
		case <-time.After(m.b.cfg.leaveTimeout):
			m.b.cfg.log.Warn("kafkabackend: the consumer's client is still closing (a group request is in flight)",
				"group", m.sub.Group, "instance", m.sub.Instance)
		}
		m.b.mu.Lock()
		delete(m.b.members, m)
		m.b.mu.Unlock()
		if m.sub.Instance == "" || fenced {
			return // a dynamic member left in Close; a fenced one is not ours
		}
		ctx, cancel := context.WithTimeout(context.Background(), m.b.cfg.leaveTimeout)
		defer cancel()
		resp, err := m.b.adm.LeaveGroup(ctx, kadm.LeaveGroup(m.sub.Group).InstanceIDs(m.sub.Instance).Reason("kafka-rest: consumer instance closed"))
		if err == nil {
			err = resp.Error()
		}
		if err != nil && !errors.Is(err, kerr.UnknownMemberID) && !errors.Is(err, kerr.GroupIDNotFound) {
			m.closeErr = fmt.Errorf("kafkabackend: leaving group %q as instance %q: %w", m.sub.Group, m.sub.Instance, err)
			m.b.cfg.log.Warn("kafkabackend: leave group failed; the partitions move after the session timeout",
				"group", m.sub.Group, "instance", m.sub.Instance, "err", err)
		}
	})
	return m.closeErr
}
