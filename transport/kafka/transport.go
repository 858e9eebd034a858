package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/internal/kafkahash"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Transport is a transport.Transport and transport.Tailer on a Kafka
// cluster. It holds one franz-go client for producing and admin requests,
// and one more per Consumer (group member or tail).
//
// It is safe for concurrent use. After Close every method returns an error
// wrapping transport.ErrClosed; Close is idempotent.
type Transport struct {
	o     options
	base  []kgo.Opt
	cl    *kgo.Client
	adm   *kadm.Client
	rr    atomic.Uint32
	close sync.Once
	// outages logs the brokers the clients cannot reach (WithLogger).
	outages *outages

	mu        sync.Mutex
	closed    bool
	consumers map[*consumer]struct{}
	topics    map[string]topicMeta
	pins      map[string]map[string]map[int32]int64 // group → topic → partition → start offset for StartLatest
}

type topicMeta struct {
	partitions int32
	id         [16]byte
	at         time.Time
}

var (
	_ transport.Transport    = (*Transport)(nil)
	_ transport.Tailer       = (*Transport)(nil)
	_ transport.TopicChecker = (*Transport)(nil)
)

// New connects to a Kafka cluster. Brokers or WithConfig is required. It
// contacts the brokers before returning, so unreachable brokers (an error
// wrapping transport.ErrUnavailable) or refused credentials (one wrapping
// transport.ErrUnauthenticated) fail here, within SetupTimeout. Later, a
// broker that cannot be reached once franz-go's own retries gave up (a
// refused or timed-out connection, a DNS failure, BROKER_NOT_AVAILABLE and
// the like) is an error wrapping transport.ErrUnavailable too; franz-go
// retries until then without a word, so the transport logs a warning
// (WithLogger) the first time a broker cannot be reached, once per outage
// of that broker.
func New(opts ...Option) (*Transport, error) {
	o := defaults()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	base, err := o.cfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	t := &Transport{
		o:         o,
		base:      base,
		consumers: make(map[*consumer]struct{}),
		topics:    make(map[string]topicMeta),
		pins:      make(map[string]map[string]map[int32]int64),
		outages:   newOutages(o.logger.With(slog.String("transport", "kafka"))),
	}
	popts := append(t.clientOpts(),
		kgo.ProducerLinger(o.linger),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(int32(min(o.maxMessageBytes+(16<<10), 1<<30))),
		kgo.UnknownTopicRetries(0),
	)
	cl, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.setupTimeout)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		if err = mapErr(err); errors.Is(err, transport.ErrUnauthenticated) {
			return nil, fmt.Errorf("kafka: brokers %s refused the SASL %s credentials of user %q: %w", strings.Join(o.cfg.Brokers, ","), o.cfg.SASLMechanism, o.cfg.SASLUsername, err)
		}
		if !errors.Is(err, transport.ErrUnavailable) {
			// A listener that never answers runs out the timeout: a
			// deadline, as unreachable as a refused port.
			err = fmt.Errorf("%w: %w", transport.ErrUnavailable, err)
		}
		if ctx.Err() != nil { // it waited the whole setup timeout
			return nil, fmt.Errorf("kafka: cannot reach brokers %s within %v: %w", strings.Join(o.cfg.Brokers, ","), o.setupTimeout, err)
		}
		return nil, fmt.Errorf("kafka: cannot reach brokers %s: %w", strings.Join(o.cfg.Brokers, ","), err)
	}
	t.cl, t.adm = cl, kadm.NewClient(cl)
	return t, nil
}

// FromEnv is New with the Config read by ConfigFromEnv (KAFKA_BROKERS and
// the optional KAFKA_SASL_* and KAFKA_TLS_* variables), then opts.
func FromEnv(opts ...Option) (*Transport, error) {
	c, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return New(append([]Option{WithConfig(c)}, opts...)...)
}

// clientOpts returns the options every client of t starts with.
func (t *Transport) clientOpts() []kgo.Opt {
	out := append([]kgo.Opt(nil), t.base...)
	// A leader or coordinator move makes the client reload metadata before
	// it retries; franz-go's 5 s floor between reloads would stall every
	// call for seconds, so the floor here is 250 ms.
	out = append(out, kgo.FetchMaxWait(t.o.pollWindow), kgo.MetadataMinAge(250*time.Millisecond), kgo.WithHooks(t.outages))
	return append(out, t.o.extra...)
}

// Close closes every Consumer made by t, then t's own client. It is
// idempotent and returns nil.
func (t *Transport) Close() error {
	t.close.Do(func() {
		t.mu.Lock()
		t.closed = true
		cs := make([]*consumer, 0, len(t.consumers))
		for c := range t.consumers {
			cs = append(cs, c)
		}
		t.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() { defer wg.Done(); _ = c.Close() }()
		}
		wg.Wait()
		t.cl.Close()
	})
	return nil
}

var errClosed = fmt.Errorf("kafka: %w", transport.ErrClosed)

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Produce appends msgs and returns them with Partition, Offset and Time
// filled in.
//
// Every message is checked before anything is sent: an empty topic or a
// manual partition out of range wraps transport.ErrInvalid, a missing topic
// transport.ErrUnknownTopic (unless AutoCreateTopics), a record over
// MaxMessageBytes transport.ErrMessageTooLarge; then nothing is written.
// Records of one Produce to several partitions are separate Kafka batches:
// a broker error can write some and not others (the error says which
// failed).
//
// Deadline: Produce returns when ctx ends. Records not yet sent are then
// not sent; records already on the wire stay with the idempotent producer,
// which finishes them exactly once in the background (it never cancels a
// request in flight, which would let a retry write them twice). Produce
// cannot tell which, so it returns an error wrapping both ctx.Err() and
// transport.ErrOutcomeUnknown.
func (t *Transport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if t.isClosed() {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	recs := make([]*kgo.Record, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Topic == "" {
			return nil, fmt.Errorf("kafka: produce record %d: empty topic: %w", i, transport.ErrInvalid)
		}
		if size := len(m.Key) + len(m.Value) + headersSize(m.Headers); size > t.o.maxMessageBytes {
			return nil, fmt.Errorf("kafka: produce record %d to %q: %d bytes, over the limit of %d: %w", i, m.Topic, size, t.o.maxMessageBytes, transport.ErrMessageTooLarge)
		}
	}
	for i := range msgs {
		m := &msgs[i]
		n, err := t.partitions(ctx, m.Topic)
		if err != nil {
			return nil, err
		}
		var p int32
		switch {
		case m.ManualPartition:
			if m.Partition < 0 || m.Partition >= n {
				return nil, fmt.Errorf("kafka: produce record %d: partition %d of %q (which has %d): %w", i, m.Partition, m.Topic, n, transport.ErrInvalid)
			}
			p = m.Partition
		case m.Key != "":
			p = kafkahash.Partition(m.Key, n)
		default:
			p = int32(t.rr.Add(1) % uint32(n))
		}
		r := &kgo.Record{Topic: m.Topic, Partition: p, Value: m.Value, Timestamp: m.Time}
		if m.Key != "" {
			r.Key = []byte(m.Key)
		}
		if len(m.Headers) > 0 {
			r.Headers = make([]kgo.RecordHeader, len(m.Headers))
			for j, h := range m.Headers {
				r.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)}
			}
		}
		recs[i] = r
	}

	done := make(chan struct{})
	var (
		pending = int32(len(recs))
		errMu   sync.Mutex
		errs    = make([]error, len(recs))
	)
	for i, r := range recs {
		t.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				errs[i] = err
				errMu.Unlock()
			}
			if atomic.AddInt32(&pending, -1) == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done: // finished at the same time: the results say
		default:
			return nil, fmt.Errorf("kafka: produce to %q: %w before every record was acknowledged (%w)", msgs[0].Topic, ctx.Err(), transport.ErrOutcomeUnknown)
		}
	}
	errMu.Lock()
	defer errMu.Unlock()
	out := make([]transport.Message, len(msgs))
	for i, r := range recs {
		if err := errs[i]; err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				t.forget(r.Topic)
			}
			return nil, fmt.Errorf("kafka: produce record %d to %q: %w", i, r.Topic, t.mapErr(err))
		}
		m := msgs[i]
		m.Partition, m.Offset, m.Time, m.ManualPartition = r.Partition, r.Offset, r.Timestamp.Truncate(time.Millisecond), false
		out[i] = m
	}
	return out, nil
}

func headersSize(hs []transport.Header) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// mapErr maps err, which came from a client of t, adding ErrClosed when t
// was closed meanwhile.
func (t *Transport) mapErr(err error) error {
	if errors.Is(err, kgo.ErrClientClosed) && t.isClosed() {
		return fmt.Errorf("%w: %w", transport.ErrClosed, err)
	}
	return mapErr(err)
}

// mapErr wraps err with the transport sentinel it stands for, if any.
func mapErr(err error) error {
	var s error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		s = transport.ErrUnknownTopic
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		s = transport.ErrMessageTooLarge
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.UnsupportedSaslMechanism):
		s = transport.ErrUnauthenticated
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		s = transport.ErrPermissionDenied
	case errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidPartitions):
		s = transport.ErrInvalid
	case errors.Is(err, kerr.FencedInstanceID):
		s = transport.ErrFenced
	case errors.Is(err, kgo.ErrClientClosed):
		s = transport.ErrClosed
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries):
		s = transport.ErrOutcomeUnknown
	case isNetError(err), errors.Is(err, kerr.BrokerNotAvailable), errors.Is(err, kerr.CoordinatorNotAvailable),
		errors.Is(err, kerr.LeaderNotAvailable):
		// franz-go retried (dialing, metadata) until it gave up.
		s = transport.ErrUnavailable
	default:
		return err
	}
	if errors.Is(err, s) {
		return err
	}
	return fmt.Errorf("%w: %w", s, err)
}

// isNetError reports whether err is a failure to reach a broker (a refused,
// reset or timed-out connection, a DNS failure), as franz-go returns it.
func isNetError(err error) bool {
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de)
}

// partitions returns topic's partition count, from a cache of metadata no
// older than the metadata TTL, asking a broker once on a miss. A missing
// topic is created when AutoCreateTopics says so, or else fails at once
// with transport.ErrUnknownTopic (franz-go's own producer would retry its
// metadata several times first).
func (t *Transport) partitions(ctx context.Context, topic string) (int32, error) {
	tm, err := t.meta(ctx, topic)
	return tm.partitions, err
}

// meta returns topic's partition count and id (see partitions).
func (t *Transport) meta(ctx context.Context, topic string) (topicMeta, error) {
	t.mu.Lock()
	tm, ok := t.topics[topic]
	t.mu.Unlock()
	if ok && time.Since(tm.at) < t.o.metadataTTL {
		return tm, nil
	}
	tm, err := t.loadMeta(ctx, topic)
	if errors.Is(err, transport.ErrUnknownTopic) && t.o.autoCreate {
		if err = t.create(ctx, topic); err == nil {
			tm, err = t.awaitTopic(ctx, topic)
		}
	}
	if err != nil {
		return topicMeta{}, err
	}
	tm.at = time.Now()
	t.mu.Lock()
	t.topics[topic] = tm
	t.mu.Unlock()
	return tm, nil
}

func (t *Transport) forget(topic string) {
	t.mu.Lock()
	delete(t.topics, topic)
	t.mu.Unlock()
}

// loadPartitions asks a broker for topic's metadata, never creating it.
func (t *Transport) loadMeta(ctx context.Context, topic string) (topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, t.cl)
	if err != nil {
		if ctx.Err() != nil {
			return topicMeta{}, fmt.Errorf("kafka: metadata of %q: %w", topic, ctx.Err())
		}
		return topicMeta{}, fmt.Errorf("kafka: metadata of %q: %w", topic, t.mapErr(err))
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return topicMeta{}, fmt.Errorf("kafka: topic %q: %w", topic, mapErr(err))
		}
		if len(rt.Partitions) == 0 {
			return topicMeta{}, fmt.Errorf("kafka: topic %q has no partitions yet: %w", topic, transport.ErrUnknownTopic)
		}
		return topicMeta{partitions: int32(len(rt.Partitions)), id: rt.TopicID}, nil
	}
	return topicMeta{}, fmt.Errorf("kafka: topic %q: not in the metadata: %w", topic, transport.ErrUnknownTopic)
}

func (t *Transport) create(ctx context.Context, topic string) error {
	resp, err := t.adm.CreateTopic(ctx, t.o.createParts, t.o.createRF, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %q: %w", topic, t.mapErr(err))
	}
	return nil
}

// awaitTopic waits until a topic just created shows in the metadata (at
// once on one broker; a moment on a cluster).
func (t *Transport) awaitTopic(ctx context.Context, topic string) (topicMeta, error) {
	ctx, cancel := context.WithTimeout(ctx, t.o.setupTimeout)
	defer cancel()
	for {
		tm, err := t.loadMeta(ctx, topic)
		if !errors.Is(err, transport.ErrUnknownTopic) {
			return tm, err
		}
		select {
		case <-ctx.Done():
			return topicMeta{}, fmt.Errorf("kafka: topic %q created but not visible: %w", topic, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// MissingTopics implements transport.TopicChecker: the topics whose metadata
// the brokers do not have. With AutoCreateTopics, a missing topic is created
// first, as a Produce would create it.
func (t *Transport) MissingTopics(ctx context.Context, topics ...string) ([]string, error) {
	if t.isClosed() {
		return nil, fmt.Errorf("kafka: missing topics: %w", transport.ErrClosed)
	}
	var out []string
	for _, tp := range topics {
		if _, err := t.partitions(ctx, tp); errors.Is(err, transport.ErrUnknownTopic) {
			if !slices.Contains(out, tp) {
				out = append(out, tp)
			}
		} else if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkTopics makes sure each topic exists (or is created).
func (t *Transport) checkTopics(ctx context.Context, topics []string) error {
	for _, tp := range topics {
		if tp == "" {
			return fmt.Errorf("kafka: empty topic name: %w", transport.ErrInvalid)
		}
		if _, err := t.partitions(ctx, tp); err != nil {
			return err
		}
	}
	return nil
}

// endOffsets lists the end offsets of every partition of topics.
func (t *Transport) endOffsets(ctx context.Context, topics []string) (map[string]map[int32]int64, error) {
	lo, err := t.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", strings.Join(topics, ","), t.mapErr(err))
	}
	out := make(map[string]map[int32]int64, len(topics))
	lo.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = make(map[int32]int64)
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out, nil
}
