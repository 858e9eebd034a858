package kafkabackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// Defaults of the options.
const (
	// DefaultMaxMessageBytes is the largest record the backend produces
	// (key + value + headers), Kafka's max.message.bytes.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultMetadataTTL is how long the backend trusts its cache of a
	// topic's partition count.
	DefaultMetadataTTL = 5 * time.Second
	// DefaultMaxPollRecords bounds the records one consume answers.
	DefaultMaxPollRecords = 1000
	// DefaultLeaveTimeout bounds the LeaveGroup a member's Close sends.
	DefaultLeaveTimeout = 5 * time.Second
)

// Option configures [New].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	maxMessageBytes int
	metadataTTL     time.Duration
	maxPollRecords  int
	autoCreate      int32 // partitions of auto-created topics; 0: off
	leaveTimeout    time.Duration
	log             *slog.Logger
	clientOpts      []kgo.Opt
}

func defaults() config {
	return config{
		maxMessageBytes: DefaultMaxMessageBytes,
		metadataTTL:     DefaultMetadataTTL,
		maxPollRecords:  DefaultMaxPollRecords,
		leaveTimeout:    DefaultLeaveTimeout,
		log:             slog.New(slog.DiscardHandler),
	}
}

func (c config) validate() error {
	switch {
	case c.maxMessageBytes < 1:
		return fmt.Errorf("kafkabackend: WithMaxMessageBytes(%d): want at least 1", c.maxMessageBytes)
	case c.metadataTTL <= 0:
		return fmt.Errorf("kafkabackend: WithMetadataTTL(%v): want a positive duration", c.metadataTTL)
	case c.maxPollRecords < 1:
		return fmt.Errorf("kafkabackend: WithMaxPollRecords(%d): want at least 1", c.maxPollRecords)
	case c.autoCreate < 0:
		return fmt.Errorf("kafkabackend: WithAutoCreateTopics(%d): want 0 (off) or a partition count", c.autoCreate)
	case c.log == nil:
		return errors.New("kafkabackend: WithLogger(nil)")
	}
	return nil
}

// WithMaxMessageBytes sets the largest record produced, key + value +
// headers, in bytes; a larger one is refused before it is sent
// (transport.ErrMessageTooLarge, 413). Default DefaultMaxMessageBytes
// (1 MiB). The brokers' own max.message.bytes still applies: a record they
// refuse as too large is a 413 too.
func WithMaxMessageBytes(n int) Option { return optionFunc(func(c *config) { c.maxMessageBytes = n }) }

// WithMetadataTTL sets how long a topic's partition count is cached before
// it is asked again. An unknown topic is always asked again at once.
// Default DefaultMetadataTTL (5 s).
func WithMetadataTTL(d time.Duration) Option {
	return optionFunc(func(c *config) { c.metadataTTL = d })
}

// WithMaxPollRecords bounds the records one Poll of a member returns.
// Default DefaultMaxPollRecords (1000).
func WithMaxPollRecords(n int) Option { return optionFunc(func(c *config) { c.maxPollRecords = n }) }

// WithAutoCreateTopics makes Produce and Subscribe create an unknown topic
// with partitions partitions (replication factor: the brokers' default)
// instead of failing with transport.ErrUnknownTopic. Default 0: off, as a
// proxy in front of a shared cluster should be.
func WithAutoCreateTopics(partitions int32) Option {
	return optionFunc(func(c *config) { c.autoCreate = partitions })
}

// WithLogger sets the logger of the backend's own events (an idle member's
// leave failing, say). Default: discard. It never logs credentials.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.log = l }) }

// WithClientOpts appends franz-go options to every client the backend makes
// (after those of the kafka.Config and the backend's own). For tests and
// tuning; an option that changes the backend's choices (the partitioner,
// linger, auto-commit) breaks its contract.
func WithClientOpts(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.clientOpts = append(c.clientOpts, opts...) })
}

// Backend is a [restserver.Backend] in front of a Kafka cluster. One shared
// franz-go client produces (linger 0, Kafka's murmur2 placement, no topic
// auto-creation unless asked) and serves the admin calls, group-free
// fetches and offsets; each consumer instance gets a client of its own (see
// Subscribe). It is safe for concurrent use. Close it after the REST server.
type Backend struct {
	cfg   config
	kcfg  kafka.Config
	base  []kgo.Opt // connection options of every client
	cl    *kgo.Client
	adm   *kadm.Client
	meta  metaCache
	reach reach    // the outcome of the clients' dials (see reach.explain)
	rr    sync.Map // topic -> *atomic.Uint32: round-robin of unkeyed records
	close sync.Once
	bg    sync.WaitGroup // members' clients closing in the background

	mu      sync.Mutex
	closed  bool
	members map[*member]struct{}
}

var _ restserver.Backend = (*Backend)(nil)

// New connects to the cluster kcfg names and checks, within ctx, that a
// broker answers: with brokers unreachable or credentials refused it fails
// with a clear error (naming the brokers, never the password) when ctx ends
// or the brokers answer. Give ctx a deadline.
func New(ctx context.Context, kcfg kafka.Config, opts ...Option) (*Backend, error) {
	cfg := defaults()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, err := kcfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, kcfg: kcfg, members: map[*member]struct{}{}}
	// Every client's dials, the shared client's and the members': a
	// deadline is explained by a refused dial whichever client made it.
	b.base = append(base, kgo.WithHooks(&b.reach))
	copts := append(append([]kgo.Opt(nil), b.base...),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(int32(min(cfg.maxMessageBytes+512, 1<<30))),
		kgo.UnknownTopicRetries(1),
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	copts = append(copts, cfg.clientOpts...)
	b.cl, err = kgo.NewClient(copts...)
	if err != nil {
		return nil, fmt.Errorf("kafkabackend: %w", err)
	}
	b.adm = kadm.NewClient(b.cl)
	b.meta.b = b
	if err := b.cl.Ping(ctx); err != nil {
		b.cl.Close()
		return nil, fmt.Errorf("kafkabackend: no broker of %s answered: %w", kcfg.String(), mapConnErr(kcfg, err))
	}
	// A request that needs SASL to have passed: Ping alone may be answered
	// before authentication on some brokers.
	if _, err := b.adm.BrokerMetadata(ctx); err != nil {
		b.cl.Close()
		return nil, fmt.Errorf("kafkabackend: brokers %s: %w", kcfg.String(), mapConnErr(kcfg, err))
	}
	return b, nil
}

// mapConnErr says what a connection failure means. Some brokers (kfake
// among them) close the connection on a refused SASL login instead of
// answering SASL_AUTHENTICATION_FAILED: with SASL configured, an EOF is
// reported as a failed authentication too.
func mapConnErr(kcfg kafka.Config, err error) error {
	const msg = "authentication failed (check the SASL mechanism, username and password)"
	if errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) {
		return fmt.Errorf("%s: %w (%v)", msg, transport.ErrUnauthenticated, err)
	}
	if kcfg.SASLMechanism != "" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		return fmt.Errorf("%s: the brokers closed the connection during the SASL login: %w (%v)", msg, transport.ErrUnauthenticated, err)
	}
	return err
}

// Close closes every member (leaving their groups) and the shared client.
// Later calls return errors wrapping transport.ErrClosed. Idempotent.
func (b *Backend) Close() error {
	b.close.Do(func() {
		b.mu.Lock()
		b.closed = true
		ms := make([]*member, 0, len(b.members))
		for m := range b.members {
			ms = append(ms, m)
		}
		b.mu.Unlock()
		for _, m := range ms {
			_ = m.Close()
		}
		b.cl.Close()
		b.bg.Wait()
	})
	return nil
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Backend) errIfClosed(what string) error {
	if b.isClosed() {
		return fmt.Errorf("kafkabackend: %s: %w", what, transport.ErrClosed)
	}
	return nil
}

// Topics lists every topic that is not internal, with its partition count.
func (b *Backend) Topics(ctx context.Context) (_ map[string]int32, err error) {
	defer b.reach.explain("topics", &err)
	if err := b.errIfClosed("list topics"); err != nil {
		return nil, err
	}
	tds, err := b.adm.ListTopics(ctx)
	if err != nil {
		return nil, mapErr("list topics", err)
	}
	out := make(map[string]int32, len(tds))
	for name, td := range tds {
		if td.Err != nil || td.IsInternal {
			continue
		}
		out[name] = int32(len(td.Partitions))
		b.meta.put(td)
	}
	return out, nil
}

// partitionCheck fails unless tp names an existing partition: an unknown
// topic wraps transport.ErrUnknownTopic, a partition out of range
// transport.ErrInvalid. It answers from the metadata cache.
func (b *Backend) partitionCheck(ctx context.Context, what string, tp transport.TopicPartition) error {
	n, err := b.meta.partitions(ctx, tp.Topic, false)
	if err != nil {
		return mapErr(what, err)
	}
	if tp.Partition < 0 || tp.Partition >= n {
		// The count may have grown since it was cached.
		if n, err = b.meta.partitions(ctx, tp.Topic, true); err != nil {
			return mapErr(what, err)
		}
		if tp.Partition < 0 || tp.Partition >= n {
			return fmt.Errorf("kafkabackend: %s: topic %q has %d partitions, no partition %d: %w", what, tp.Topic, n, tp.Partition, transport.ErrInvalid)
		}
	}
	return nil
}

// Offsets returns the log start offset and the high watermark of tp: two
// ListOffsets requests, concurrently, to the partition's leader.
func (b *Backend) Offsets(ctx context.Context, tp transport.TopicPartition) (earliest, latest int64, err error) {
	defer b.reach.explain("offsets", &err)
	const what = "offsets"
	if err := b.errIfClosed(what); err != nil {
		return 0, 0, err
	}
	if err := b.partitionCheck(ctx, what, tp); err != nil {
		return 0, 0, err
	}
	var wg sync.WaitGroup
	var errStart error
	wg.Go(func() { earliest, errStart = b.listOffset(ctx, what, tp, -2) })
	latest, err = b.listOffset(ctx, what, tp, -1)
	wg.Wait()
	if err == nil {
		err = errStart
	}
	return earliest, latest, err
}

var _ restserver.OffsetsLister = (*Backend)(nil)

// ListOffsets returns the log start offsets (earliest) or the high
// watermarks of tps: one ListOffsets request per leader of them (kgo splits
// it), whatever their number, where Offsets makes two per partition. It
// first checks from the metadata cache that every partition exists,
// failing for the first of tps that does not.
func (b *Backend) ListOffsets(ctx context.Context, tps []transport.TopicPartition, earliest bool) (_ []int64, err error) {
	defer b.reach.explain("offsets", &err)
	const what = "offsets"
	if err := b.errIfClosed(what); err != nil {
		return nil, err
	}
	out := make([]int64, len(tps))
	if len(tps) == 0 {
		return out, nil
	}
	at := make(map[transport.TopicPartition]int, len(tps)) // -> index in parts
	parts := make([]transport.Offset, 0, len(tps))
	for _, tp := range tps {
		if _, ok := at[tp]; ok {
			continue
		}
		if err := b.partitionCheck(ctx, what, tp); err != nil {
			return nil, err
		}
		at[tp] = len(parts)
		parts = append(parts, transport.Offset{Topic: tp.Topic, Partition: tp.Partition})
	}
	ts := int64(-1)
	if earliest {
		ts = -2
	}
	offs, err := b.listOffsets(ctx, parts, ts)
	if err != nil {
		return nil, mapErr(what, err)
	}
	for i, tp := range tps {
		out[i] = offs[at[tp]]
	}
	return out, nil
}

// OffsetForTime returns the first offset of tp whose record time is at or
// after t, or the high watermark when there is none.
func (b *Backend) OffsetForTime(ctx context.Context, tp transport.TopicPartition, t time.Time) (_ int64, err error) {
	defer b.reach.explain("offset for time", &err)
	const what = "offset for time"
	if err := b.errIfClosed(what); err != nil {
		return 0, err
	}
	if err := b.partitionCheck(ctx, what, tp); err != nil {
		return 0, err
	}
	off, err := b.listOffset(ctx, what, tp, t.UnixMilli())
	if err == nil && off < 0 { // no record at or after t
		return b.listOffset(ctx, what, tp, -1)
	}
	return off, err
}

// listOffset runs ListOffsets for one partition (ts -2 start, -1 end, else
// a millisecond time; -1 answered when no record is at or after it).
func (b *Backend) listOffset(ctx context.Context, what string, tp transport.TopicPartition, ts int64) (int64, error) {
	offs, err := b.listOffsets(ctx, []transport.Offset{{Topic: tp.Topic, Partition: tp.Partition}}, ts)
	if err != nil {
		return 0, mapErr(what, err)
	}
	return offs[0], nil
}

// listOffsets runs one ListOffsets (kgo splits it by leader, with its
// cached metadata) for parts at timestamp ts and returns the offsets in the
// order of parts.
func (b *Backend) listOffsets(ctx context.Context, parts []transport.Offset, ts int64) ([]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	idx := map[string]int{}
	for _, p := range parts {
		i, ok := idx[p.Topic]
		if !ok {
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = p.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			idx[p.Topic] = i
		}
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = ts
		rp.MaxNumOffsets = 1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	kresp, err := b.cl.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	got := map[transport.TopicPartition]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				if errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, kerr.UnknownTopicOrPartition) {
					b.meta.forget(t.Topic)
				}
				return nil, fmt.Errorf("topic %q partition %d: %w", t.Topic, p.Partition, err)
			}
			got[transport.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.Offset
		}
	}
	out := make([]int64, len(parts))
	for i, p := range parts {
		o, ok := got[transport.TopicPartition{Topic: p.Topic, Partition: p.Partition}]
		if !ok {
			return nil, fmt.Errorf("no offset for topic %q partition %d: %w", p.Topic, p.Partition, kerr.UnknownServerError)
		}
		out[i] = o
	}
	return out, nil
}

// Committed returns group's committed offset of tp, -1 without one: one
// OffsetFetch naming tp alone (ListCommitted).
func (b *Backend) Committed(ctx context.Context, group string, tp transport.TopicPartition) (int64, error) {
	offs, err := b.ListCommitted(ctx, group, []transport.TopicPartition{tp})
	if err != nil {
		return 0, err
	}
	return offs[0], nil
}

var _ restserver.CommittedLister = (*Backend)(nil)

// ListCommitted returns group's committed offsets of tps, -1 for a
// partition without one (and for all when the group does not exist): one
// OffsetFetch to the group's coordinator naming just these partitions,
// whatever their number and topics. It first checks from the metadata
// cache that every partition exists, failing for the first of tps that
// does not.
func (b *Backend) ListCommitted(ctx context.Context, group string, tps []transport.TopicPartition) (_ []int64, err error) {
	defer b.reach.explain("committed", &err)
	const what = "committed offset"
	if err := b.errIfClosed(what); err != nil {
		return nil, err
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	topicAt := map[string]int{}
	named := map[transport.TopicPartition]bool{}
	for _, tp := range tps {
		if named[tp] {
			continue
		}
		if err := b.partitionCheck(ctx, what, tp); err != nil {
			return nil, err
		}
		named[tp] = true
		i, ok := topicAt[tp.Topic]
		if !ok {
			i = len(req.Topics)
			topicAt[tp.Topic] = i
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, tp.Partition)
	}
	out := make([]int64, len(tps))
	if len(tps) == 0 {
		return out, nil
	}
	kresp, err := b.cl.Request(ctx, req)
	if err != nil {
		return nil, mapErr(what, err)
	}
	resp := kresp.(*kmsg.OffsetFetchResponse)
	// v8+ answers in Groups; kgo fills the top-level fields from it for a
	// single group, and Groups from them below v8.
	code := resp.ErrorCode
	type answer struct {
		at   int64
		code int16
	}
	got := make(map[transport.TopicPartition]answer, len(named))
	if len(resp.Groups) > 0 {
		g := resp.Groups[0]
		code = g.ErrorCode
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				got[transport.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = answer{p.Offset, p.ErrorCode}
			}
		}
	} else {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				got[transport.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = answer{p.Offset, p.ErrorCode}
			}
		}
	}
	if err := kerr.ErrorForCode(code); errors.Is(err, kerr.GroupIDNotFound) {
		for i := range out {
			out[i] = -1
		}
		return out, nil
	} else if err != nil {
		return nil, mapErr(what, err)
	}
	for i, tp := range tps {
		a, ok := got[tp]
		if !ok {
			out[i] = -1
			continue
		}
		if err := kerr.ErrorForCode(a.code); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
				b.meta.forget(tp.Topic)
			}
			return nil, mapErr(what, fmt.Errorf("topic %q partition %d: %w", tp.Topic, tp.Partition, err))
		}
		out[i] = a.at
	}
	return out, nil
}

// metaCache caches partition counts of topics.
type metaCache struct {
	b  *Backend
	mu sync.Mutex
	m  map[string]metaEntry
}

type metaEntry struct {
	partitions int32
	id         [16]byte        // topic id, for Fetch v13+
	leaders    map[int32]int32 // partition -> leader broker
	at         time.Time
}

func (c *metaCache) put(td kadm.TopicDetail) metaEntry {
	e := metaEntry{partitions: int32(len(td.Partitions)), id: td.ID, leaders: make(map[int32]int32, len(td.Partitions)), at: time.Now()}
	for p, pd := range td.Partitions {
		e.leaders[p] = pd.Leader
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]metaEntry{}
	}
	c.m[td.Topic] = e
	return e
}

func (c *metaCache) forget(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, topic)
}

// partitions returns topic's partition count from the cache, or from one
// metadata request (fresh forces it). An unknown topic is
// kerr.UnknownTopicOrPartition, at once: the metadata answer says so.
func (c *metaCache) partitions(ctx context.Context, topic string, fresh bool) (int32, error) {
	e, err := c.entry(ctx, topic, fresh, false)
	return e.partitions, err
}

// creating is partitions, creating an unknown topic with
// WithAutoCreateTopics (produce and subscribe do; reads never create).
func (c *metaCache) creating(ctx context.Context, topic string, fresh bool) (int32, error) {
	e, err := c.entry(ctx, topic, fresh, true)
	return e.partitions, err
}

// entry is partitions with the topic's id and leaders.
func (c *metaCache) entry(ctx context.Context, topic string, fresh, create bool) (metaEntry, error) {
	if topic == "" {
		return metaEntry{}, fmt.Errorf("empty topic name: %w", transport.ErrInvalid)
	}
	if !fresh {
		c.mu.Lock()
		e, ok := c.m[topic]
		c.mu.Unlock()
		if ok && time.Since(e.at) < c.b.cfg.metadataTTL {
			return e, nil
		}
	}
	tds, err := c.b.adm.ListTopics(ctx, topic)
	if err != nil {
		return metaEntry{}, err
	}
	td, ok := tds[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) || (td.Err == nil && len(td.Partitions) == 0) {
		c.forget(topic)
		if n := c.b.cfg.autoCreate; n > 0 && create {
			return c.create(ctx, topic, n)
		}
		return metaEntry{}, fmt.Errorf("topic %q: %w", topic, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return metaEntry{}, td.Err
	}
	return c.put(td), nil
}

// create makes topic with n partitions (WithAutoCreateTopics); a topic made
// meanwhile by someone else is fine.
func (c *metaCache) create(ctx context.Context, topic string, n int32) (metaEntry, error) {
	resp, err := c.b.adm.CreateTopic(ctx, n, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return metaEntry{}, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tds, err := c.b.adm.ListTopics(ctx, topic)
		if err != nil {
			return metaEntry{}, err
		}
		if td, ok := tds[topic]; ok && td.Err == nil && len(td.Partitions) > 0 {
			return c.put(td), nil
		}
		if time.Now().After(deadline) {
			return metaEntry{}, fmt.Errorf("topic %q was created but is not in the metadata yet: %w", topic, kerr.LeaderNotAvailable)
		}
		select {
		case <-ctx.Done():
			return metaEntry{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// nextRoundRobin returns the partition of topic's next unkeyed record.
func (b *Backend) nextRoundRobin(topic string, n int32) int32 {
	v, _ := b.rr.Load(topic)
	if v == nil {
		v, _ = b.rr.LoadOrStore(topic, new(atomic.Uint32))
	}
	return int32((v.(*atomic.Uint32).Add(1) - 1) % uint32(n))
}
