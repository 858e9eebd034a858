package memory

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/kafkahash"
	"github.com/kafkarpc/kafkarpc/transport"
)

// emptyValue stands for a non-nil empty Value, so a stored record keeps the
// nil/empty distinction of its input without an allocation.
var emptyValue = []byte{}

// Produce appends msgs, in order, and returns copies of them with Topic,
// Partition, Offset and Time filled in (see transport.Message for how the
// partition is chosen: Kafka's murmur2 partitioner for a non-empty Key,
// round-robin for an empty one, Partition as given with ManualPartition).
// A zero Time becomes the append time; every Time is truncated to the
// millisecond. The broker copies Value and Headers, so the caller may reuse
// its buffers; the returned messages share the broker's copies and are
// read-only.
//
// All msgs are checked before any is appended, so on error none is: an
// unknown topic (with auto-creation off) is an error wrapping
// transport.ErrUnknownTopic, a record over WithMaxMessageBytes one wrapping
// transport.ErrMessageTooLarge, a bad topic name or manual partition one
// wrapping transport.ErrInvalid, new topics past WithMaxTopics' caps one
// wrapping transport.ErrInvalid. Unknown topics are created (auto-creation)
// only once every record has passed, each at O(1) cost, and not when ctx
// ends first. An ended ctx returns ctx.Err() and appends nothing. Producing no messages returns nil, nil.
func (b *Broker) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	return b.produce(ctx, msgs, false)
}

// ProduceOwned is Produce for a caller that hands msgs over: the broker
// stores each record's Value and Headers as they are instead of copying
// them, and fills in Topic, Partition, Offset and Time in msgs itself,
// which it returns. It saves two allocations and a copy per record, and one
// allocation per call.
//
// The caller must not change the records' Value bytes or Headers (slice
// or elements) after the call, whatever its outcome: readers of the records
// share them. Value and Headers may be shared between records of one call
// or of several calls, as immutable memory may. The msgs slice itself is
// the caller's again when the call returns (the broker keeps no reference
// to it); after an error some of its records may have been filled in
// already. Checks, errors and everything else are as for Produce. It is
// safe for concurrent use.
func (b *Broker) ProduceOwned(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	return b.produce(ctx, msgs, true)
}

// produce is Produce, or ProduceOwned when owned.
func (b *Broker) produce(ctx context.Context, msgs []transport.Message, owned bool) ([]transport.Message, error) {
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}

	// Check everything, create new topics and pick partitions first.
	var (
		pbuf  [8]*partition // small batches: no allocation
		parts []*partition
		err   error
	)
	for {
		var fresh []*topic
		parts, fresh, err = b.plan(ctx, msgs, pbuf[:0])
		if err != nil {
			return nil, err
		}
		if ok, err := b.publish(fresh); err != nil {
			return nil, err
		} else if ok {
			break
		}
		// Another call created one of our new topics first: plan again.
	}
	needNow := false
	for i := range msgs {
		needNow = needNow || msgs[i].Time.IsZero()
	}
	now := b.now() // one clock reading: the records' default Time and their append time
	out := b.copyIn(msgs, parts, needNow, owned, now)

	// Append runs of records bound for the same partition under one lock;
	// records for one partition keep their relative order.
	var (
		sbuf  [4]pendingSync
		syncs = sbuf[:0]
	)
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && parts[j] == parts[i] {
			j++
		}
		seq, err := parts[i].append(out[i:j], &b.cfg, now)
		if err != nil {
			return nil, err
		}
		if l := parts[i].log; l != nil {
			syncs = append(syncs, pendingSync{parts[i], seq})
		}
		i = j
	}
	if err := syncAll(syncs); err != nil {
		return nil, err
	}
	return out, nil
}

// syncAll waits until the partitions written by a produce are synced per
// the fsync policy (FsyncAlways; other policies return at once). It runs
// outside the partition locks, so that concurrent producers' fsyncs group,
// and syncs several partitions' files concurrently (the filesystem's
// journal merges concurrent fsyncs: a produce spread over 8 partitions
// costs about one fsync's latency, not eight).
func syncAll(syncs []pendingSync) error {
	if len(syncs) == 0 || !syncs[0].p.log.SyncsEach() {
		return nil
	}
	errs := make([]error, len(syncs))
	var wg sync.WaitGroup
	for i := 1; i < len(syncs); i++ {
		wg.Add(1)
		ps := syncs[i] // a copy: the goroutine does not capture syncs, which then stays on Produce's stack
		go func() {
			defer wg.Done()
			errs[i] = ps.p.log.Sync(ps.seq)
		}()
	}
	errs[0] = syncs[0].p.log.Sync(syncs[0].seq)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("memory: produce to %q partition %d: %w", syncs[i].p.topic.name, syncs[i].p.index, err)
		}
	}
	return nil
}

// pendingSync is a partition written by a produce and the sequence number
// its acknowledgement waits for.
type pendingSync struct {
	p   *partition
	seq int64
}

// plan checks every record of msgs and picks its partition, appending to
// dst (used if it has room for all) the partitions. Topics that do
// not exist (when auto-creation is on) are made but not published: plan
// returns them as fresh, for publish, so that a produce refused for any
// record creates no topic. It stops when ctx ends.
func (b *Broker) plan(ctx context.Context, msgs []transport.Message, dst []*partition) (parts []*partition, fresh []*topic, err error) {
	parts = dst
	if cap(parts) < len(msgs) {
		parts = make([]*partition, 0, len(msgs))
	}
	var (
		t       *topic
		byName  map[string]*topic
		newPart int
	)
	for i := range msgs {
		m := &msgs[i]
		if t == nil || t.name != m.Topic {
			if t = b.lookup(m.Topic); t == nil {
				if t = byName[m.Topic]; t == nil {
					if t, err = b.freshTopic(ctx, m.Topic, len(fresh), newPart); err != nil {
						return nil, nil, err
					}
					if byName == nil {
						byName = make(map[string]*topic)
					}
					byName[t.name] = t
					fresh = append(fresh, t)
					newPart += len(t.parts)
				}
			}
		}
		p, err := b.place(t, m, i)
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, p)
	}
	return parts, fresh, nil
}

// freshTopic makes, unpublished, the topic name that a produce names and
// that does not exist, after nTopics others with nParts partitions.
func (b *Broker) freshTopic(ctx context.Context, name string, nTopics, nParts int) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, fmt.Errorf("memory: produce to %q: %v: %w", name, err, transport.ErrInvalid)
	}
	if !b.cfg.autoCreate {
		return nil, fmt.Errorf("memory: produce to %q: %w", name, transport.ErrUnknownTopic)
	}
	if nTopics%256 == 255 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := b.checkCaps("produce to "+strconv.Quote(name), nTopics+1, nParts+b.cfg.partitions); err != nil {
		return nil, err
	}
	return newTopic(name, b.cfg.partitions), nil
}

// publish adds the fresh topics of a plan, all or none. It returns false
// when another call created one of them meanwhile (the plan is stale).
func (b *Broker) publish(fresh []*topic) (bool, error) {
	if len(fresh) == 0 {
		return true, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return false, errBrokerClosed
	}
	for _, t := range fresh {
		if b.lookup(t.name) != nil {
			return false, nil
		}
	}
	return true, b.publishLocked("produce", fresh)
}

// place checks the size of m, the i-th record of a produce to t, and picks
// its partition: as given, by key, or round-robin for a keyless record.
func (b *Broker) place(t *topic, m *transport.Message, i int) (*partition, error) {
	if size := recordSize(m); size > b.cfg.maxMessageBytes {
		return nil, fmt.Errorf("memory: produce to %q: record %d is %d bytes, over the limit of %d: %w",
			m.Topic, i, size, b.cfg.maxMessageBytes, transport.ErrMessageTooLarge)
	}
	var p int32
	switch n := len(t.parts); {
	case m.ManualPartition:
		if m.Partition < 0 || int(m.Partition) >= n {
			return nil, fmt.Errorf("memory: produce to %q: partition %d does not exist (the topic has %d): %w",
				m.Topic, m.Partition, n, transport.ErrInvalid)
		}
		p = m.Partition
	case m.Key != "":
		p = kafkahash.Partition(m.Key, int32(n))
	case n > 1:
		p = int32((t.rr.Add(1) - 1) % uint32(n))
	}
	return t.parts[p], nil
}

// copyIn copies msgs into records the broker owns, bound for parts. Each
// record's value and headers get their own allocation, at their own size,
// so that retention dropping a record frees its bytes whatever else shared
// its produce call (one buffer per batch let one kept record pin the
// batch). needNow says some record has no time: it gets the broker's now.
// owned says the caller handed msgs over (ProduceOwned): they are filled
// in place and their Value and Headers kept as they are. now is the
// produce's clock reading.
func (b *Broker) copyIn(msgs []transport.Message, parts []*partition, needNow, owned bool, now time.Time) []transport.Message {
	if needNow {
		now = truncMilli(now)
	}
	out := msgs
	if !owned {
		out = make([]transport.Message, len(msgs))
	}
	for i := range msgs {
		m, o, p := &msgs[i], &out[i], parts[i]
		o.Topic = p.topic.name
		o.Partition = p.index
		o.Key = m.Key
		o.ManualPartition = false
		switch {
		case owned:
			// Capacity cut to length: a reader that appends to a record's
			// Value or Headers (which it must not) gets a new array rather
			// than writing into memory the caller may share with another
			// record (rpc's dedup marker extends its reply's headers).
			o.Value = m.Value[:len(m.Value):len(m.Value)]
			o.Headers = m.Headers[:len(m.Headers):len(m.Headers)]
		case len(m.Value) > 0:
			o.Value = append(make([]byte, 0, len(m.Value)), m.Value...)
		case m.Value != nil:
			o.Value = emptyValue
		}
		if len(m.Headers) > 0 && !owned {
			o.Headers = append(make([]transport.Header, 0, len(m.Headers)), m.Headers...)
		}
		if m.Time.IsZero() {
			o.Time = now
		} else {
			o.Time = truncMilli(m.Time)
		}
	}
	return out
}

// truncMilli truncates t to the millisecond, as Kafka's timestamps are, and
// drops its monotonic clock reading. It is time.Time.Truncate(time.Millisecond)
// without the general division.
func truncMilli(t time.Time) time.Time {
	return t.Add(-time.Duration(t.Nanosecond() % int(time.Millisecond))).Round(0)
}
