package kafkabackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/internal/kafkahash"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Produce appends msgs with the shared client (linger 0, acks all,
// idempotent) and returns them with partition, offset and time filled in.
//
// A keyed record goes to toPositive(murmur2(key)) % partitions, as Kafka's
// Java client and the embedded broker place it; an empty key is unkeyed
// (sent with a nil key) and records without a key go round robin over the
// partitions; ManualPartition is honoured. Everything that can be checked
// before sending is checked for every record first (topic known from
// metadata, partition in range, size), so bad input writes nothing.
//
// Kafka has no all-or-none write across partitions without transactions: if
// the brokers refuse some records of a batch spanning partitions after
// others were written, the error says how many were written and wraps
// transport.ErrOutcomeUnknown. A zero Time is set to the time of the call.
func (b *Backend) Produce(ctx context.Context, msgs ...transport.Message) (_ []transport.Message, err error) {
	defer b.reach.explain("produce", &err)
	const what = "produce"
	if err := b.errIfClosed(what); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	// Check everything before writing or creating anything.
	counts := map[string]int32{}
	var create []string
	for i := range msgs {
		m := &msgs[i]
		if m.Topic == "" {
			return nil, fmt.Errorf("kafkabackend: produce: record %d: empty topic name: %w", i, transport.ErrInvalid)
		}
		n, ok := counts[m.Topic]
		if !ok {
			var err error
			n, err = b.meta.partitions(ctx, m.Topic, false)
			if errors.Is(err, transport.ErrUnknownTopic) || isUnknownTopic(err) {
				if b.cfg.autoCreate == 0 {
					return nil, mapErr(fmt.Sprintf("produce to %q", m.Topic), err)
				}
				if err := legalTopic(m.Topic); err != nil {
					return nil, err
				}
				n, err = b.cfg.autoCreate, nil
				create = append(create, m.Topic)
			}
			if err != nil {
				return nil, mapErr(fmt.Sprintf("produce to %q", m.Topic), err)
			}
			counts[m.Topic] = n
		}
		size := len(m.Key) + len(m.Value)
		for _, h := range m.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if size > b.cfg.maxMessageBytes {
			return nil, fmt.Errorf("kafkabackend: produce to %q: record %d is %d bytes, over the limit of %d: %w",
				m.Topic, i, size, b.cfg.maxMessageBytes, transport.ErrMessageTooLarge)
		}
		if m.ManualPartition && (m.Partition < 0 || m.Partition >= n) {
			if n2, err := b.meta.partitions(ctx, m.Topic, true); err == nil {
				n = n2 // the count may have grown
			}
			if m.Partition < 0 || m.Partition >= n {
				return nil, fmt.Errorf("kafkabackend: produce to %q: partition %d out of range (the topic has %d): %w",
					m.Topic, m.Partition, n, transport.ErrInvalid)
			}
		}
	}
	for _, t := range create {
		n, err := b.meta.creating(ctx, t, true)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("create topic %q", t), err)
		}
		counts[t] = n
	}
	recs := make([]*kgo.Record, len(msgs))
	now := time.Now()
	for i := range msgs {
		m := &msgs[i]
		n := counts[m.Topic]
		r := &kgo.Record{Topic: m.Topic, Value: m.Value, Timestamp: m.Time}
		if r.Value == nil {
			r.Value = []byte{}
		}
		if r.Timestamp.IsZero() {
			r.Timestamp = now
		}
		if m.Key != "" {
			r.Key = []byte(m.Key)
		}
		if len(m.Headers) > 0 {
			r.Headers = make([]kgo.RecordHeader, len(m.Headers))
			for j, h := range m.Headers {
				r.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)}
			}
		}
		switch {
		case m.ManualPartition:
			r.Partition = m.Partition
		case m.Key != "":
			r.Partition = kafkahash.Partition(m.Key, n)
		default:
			r.Partition = b.nextRoundRobin(m.Topic, n)
		}
		recs[i] = r
	}
	res, err := b.produceSync(ctx, recs)
	if err != nil {
		for _, m := range msgs {
			b.meta.forget(m.Topic)
		}
		return nil, fmt.Errorf("kafkabackend: produce: the brokers did not answer in time (%w); the records may still be written: %w, %w",
			err, transport.ErrOutcomeUnknown, restserver.ErrUnavailable)
	}
	// Results come in completion order, not in the order of recs.
	index := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		index[r] = i
	}
	out := make([]transport.Message, len(msgs))
	var firstErr error
	written := 0
	for _, pr := range res {
		i := index[pr.Record]
		if pr.Err != nil {
			if firstErr == nil {
				firstErr = pr.Err
			}
			continue
		}
		written++
		out[i] = msgs[i]
		out[i].Partition = pr.Record.Partition
		out[i].Offset = pr.Record.Offset
		out[i].Time = pr.Record.Timestamp.Truncate(time.Millisecond)
		out[i].ManualPartition = false
	}
	if firstErr != nil {
		for _, m := range msgs {
			b.meta.forget(m.Topic) // a deleted topic or a changed count
		}
		err := mapErr(fmt.Sprintf("produce to %q", msgs[0].Topic), firstErr)
		if written > 0 {
			return nil, fmt.Errorf("%w (%d of %d records were written before the error: %w)", err, written, len(msgs), transport.ErrOutcomeUnknown)
		}
		if errors.Is(firstErr, context.Canceled) || errors.Is(firstErr, context.DeadlineExceeded) {
			// The request may have reached the broker.
			return nil, fmt.Errorf("kafkabackend: produce: %w before the brokers answered: %w", firstErr, transport.ErrOutcomeUnknown)
		}
		return nil, err
	}
	return out, nil
}

// produceSync is ProduceSync bounded by ctx. kgo does not fail a record
// whose context ends while its batch is in flight or waiting for a broker
// that is down (it keeps retrying, to keep the idempotent sequence), so
// ProduceSync alone can outlive ctx by as long as the brokers stay away:
// a REST produce then hung past the request's deadline. The records keep
// going in the background (kgo's buffer bounds them; Close fails them).
func (b *Backend) produceSync(ctx context.Context, recs []*kgo.Record) (kgo.ProduceResults, error) {
	done := make(chan kgo.ProduceResults, 1)
	go func() { done <- b.cl.ProduceSync(ctx, recs...) }()
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		select {
		case res := <-done:
			return res, nil
		default:
			return nil, ctx.Err()
		}
	}
}

func isUnknownTopic(err error) bool { return errors.Is(err, kerr.UnknownTopicOrPartition) }

// legalTopic checks a topic name to be created against Kafka's rules:
// 1 to 249 characters of ASCII letters, digits, '.', '_' and '-', not "."
// or "..".
func legalTopic(t string) error {
	bad := len(t) == 0 || len(t) > 249 || t == "." || t == ".."
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("kafkabackend: topic name %q is not legal in Kafka (1 to 249 of a-z A-Z 0-9 . _ -): %w", t, transport.ErrInvalid)
	}
	return nil
}
