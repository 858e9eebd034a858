package memory

import (
	"context"
	"fmt"
	"time"

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
// wrapping transport.ErrInvalid. An ended ctx returns ctx.Err() and appends
// nothing. Producing no messages returns nil, nil.
func (b *Broker) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if b.closed.Load() {
		return nil, errBrokerClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}

	// Check everything and pick partitions first.
	var pbuf [8]*partition
	parts := pbuf[:0]
	if len(msgs) > len(pbuf) {
		parts = make([]*partition, 0, len(msgs))
	}
	var (
		t        *topic
		valBytes int
		nHeaders int
		needNow  bool
		err      error
	)
	for i := range msgs {
		m := &msgs[i]
		if t == nil || t.name != m.Topic {
			if t, err = b.topicFor("produce to", m.Topic, true); err != nil {
				return nil, err
			}
		}
		p, err := b.place(t, m, i)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
		valBytes += len(m.Value)
		nHeaders += len(m.Headers)
		needNow = needNow || m.Time.IsZero()
	}

	out := b.copyIn(msgs, parts, valBytes, nHeaders, needNow)

	// Append runs of records bound for the same partition under one lock;
	// records for one partition keep their relative order.
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && parts[j] == parts[i] {
			j++
		}
		parts[i].append(out[i:j], &b.cfg)
		i = j
	}
	return out, nil
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
		p = partitionForKey(m.Key, n)
	case n > 1:
		p = int32((t.rr.Add(1) - 1) % uint32(n))
	}
	return t.parts[p], nil
}

// copyIn copies msgs into records the broker owns, bound for parts, with
// valBytes of values and nHeaders headers in all: one buffer for all
// values, one for all headers. Full slice expressions keep a reader's
// append from spilling into a neighbour. needNow says some record has no
// time: it gets the broker's now.
func (b *Broker) copyIn(msgs []transport.Message, parts []*partition, valBytes, nHeaders int, needNow bool) []transport.Message {
	var (
		vbuf []byte
		hbuf []transport.Header
		now  time.Time
	)
	if valBytes > 0 {
		vbuf = make([]byte, valBytes)
	}
	if nHeaders > 0 {
		hbuf = make([]transport.Header, nHeaders)
	}
	if needNow {
		now = truncMilli(b.now())
	}
	out := make([]transport.Message, len(msgs))
	for i := range msgs {
		m, o, p := &msgs[i], &out[i], parts[i]
		o.Topic = p.topic.name
		o.Partition = p.index
		o.Key = m.Key
		switch n := len(m.Value); {
		case n > 0:
			copy(vbuf, m.Value)
			o.Value = vbuf[:n:n]
			vbuf = vbuf[n:]
		case m.Value != nil:
			o.Value = emptyValue
		}
		if n := len(m.Headers); n > 0 {
			copy(hbuf, m.Headers)
			o.Headers = hbuf[:n:n]
			hbuf = hbuf[n:]
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
