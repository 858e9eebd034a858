package upstash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The JSON shapes of the REST API (UPSTASH_REST.md §3-§6).

type wireHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// wireProduce is a TopicMessage: one element of a POST /produce body.
type wireProduce struct {
	Topic     string       `json:"topic"`
	Partition *int32       `json:"partition,omitempty"`
	Timestamp int64        `json:"timestamp,omitempty"`
	Key       string       `json:"key,omitempty"`
	Value     string       `json:"value"`
	Headers   []wireHeader `json:"headers,omitempty"`
}

// wireMetadata is one element of a produce answer.
type wireMetadata struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	// Error is not in the Upstash docs; a server may report a per-record
	// failure this way, and the client refuses to report such a record as
	// produced.
	Error string `json:"error,omitempty"`
}

// wireConsumed is a ConsumedMessage: one element of a consume or fetch answer.
type wireConsumed struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"`
	Key       string       `json:"key"`
	Value     string       `json:"value"`
	Headers   []wireHeader `json:"headers"`
}

type wireTopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type wireTopicPartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type wireConsumeRequest struct {
	Topics  []string `json:"topics"`
	Timeout int64    `json:"timeout"`
}

type wireFetchRequest struct {
	TopicPartitionOffsets []wireTopicPartitionOffset `json:"topicPartitionOffsets"`
	Timeout               int64                      `json:"timeout"`
}

// encodeProduce validates m and encodes it as one TopicMessage. Keys, values
// and header values travel as JSON strings, so they must be UTF-8: invalid
// bytes would be replaced by U+FFFD and silently corrupt the record.
func encodeProduce(i int, m *transport.Message) (json.RawMessage, error) {
	if m.Topic == "" {
		return nil, fmt.Errorf("upstash: message %d: empty topic: %w", i, transport.ErrInvalid)
	}
	if m.ManualPartition && m.Partition < 0 {
		return nil, fmt.Errorf("upstash: message %d: negative partition %d: %w", i, m.Partition, transport.ErrInvalid)
	}
	if !utf8.ValidString(m.Topic) || !utf8.ValidString(m.Key) {
		return nil, fmt.Errorf("upstash: message %d: topic or key is not valid UTF-8 (the REST API carries text only): %w", i, transport.ErrInvalid)
	}
	if !utf8.Valid(m.Value) {
		return nil, fmt.Errorf("upstash: message %d: value is not valid UTF-8 (the REST API carries values as JSON strings; encode binary data, e.g. as base64): %w", i, transport.ErrInvalid)
	}
	if !m.Time.IsZero() && m.Time.UnixMilli() <= 0 {
		return nil, fmt.Errorf("upstash: message %d: time %v is not after 1970 (the REST API takes epoch milliseconds): %w", i, m.Time, transport.ErrInvalid)
	}
	size := 64 + len(m.Topic) + len(m.Key) + len(m.Value)
	for j, h := range m.Headers {
		if !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) {
			return nil, fmt.Errorf("upstash: message %d: header %q is not valid UTF-8: %w", i, h.Key, transport.ErrInvalid)
		}
		size += 24 + len(m.Headers[j].Key) + len(m.Headers[j].Value)
	}
	return appendProduce(make([]byte, 0, size+size/8), m), nil
}

// marshal encodes v as compact JSON without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (w *wireConsumed) message() transport.Message {
	m := transport.Message{
		Topic:     w.Topic,
		Partition: w.Partition,
		Offset:    w.Offset,
		Key:       w.Key,
		Value:     []byte(w.Value),
	}
	if w.Timestamp != 0 {
		m.Time = time.UnixMilli(w.Timestamp)
	}
	if len(w.Headers) > 0 {
		m.Headers = make([]transport.Header, len(w.Headers))
		for i, h := range w.Headers {
			m.Headers[i] = transport.Header(h)
		}
	}
	return m
}

func toMessages(ws []wireConsumed) []transport.Message {
	out := make([]transport.Message, len(ws))
	for i := range ws {
		out[i] = ws[i].message()
	}
	return out
}

// msToTimeout converts a wait to the API's "timeout" in whole ms, rounding
// up so a short positive wait does not become "no wait", and clamping to the
// server's maximum.
func msToTimeout(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	if d > maxServerTimeout {
		d = maxServerTimeout
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
