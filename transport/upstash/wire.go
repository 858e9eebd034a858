package upstash

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// The client's side of the JSON wire (UPSTASH_REST.md §3-§6): the shapes
// and the fast paths are in internal/restwire, shared with the server; here
// are what only the client does with them: refusing what the wire cannot
// carry, and answers that decode themselves.

// encodeProduce validates m and encodes it as one TopicMessage (see
// checkProduce).
func encodeProduce(i int, m *transport.Message) (json.RawMessage, error) {
	size, err := checkProduce(i, m)
	if err != nil {
		return nil, err
	}
	return restwire.AppendTopicMessage(make([]byte, 0, size+size/8), m), nil
}

// checkProduce validates message i, m, for encoding as one TopicMessage,
// and returns about how many bytes that takes. Keys, values and header
// values travel as JSON strings, so they must be UTF-8: invalid bytes would
// be replaced by U+FFFD and silently corrupt the record.
func checkProduce(i int, m *transport.Message) (int, error) {
	if m.Topic == "" {
		return 0, fmt.Errorf("upstash: message %d: empty topic: %w", i, transport.ErrInvalid)
	}
	if m.ManualPartition && m.Partition < 0 {
		return 0, fmt.Errorf("upstash: message %d: negative partition %d: %w", i, m.Partition, transport.ErrInvalid)
	}
	if !utf8.ValidString(m.Topic) || !utf8.ValidString(m.Key) {
		return 0, fmt.Errorf("upstash: message %d: topic or key is not valid UTF-8 (the REST API carries text only): %w", i, transport.ErrInvalid)
	}
	if !utf8.Valid(m.Value) {
		return 0, fmt.Errorf("upstash: message %d: value is not valid UTF-8 (the REST API carries values as JSON strings; encode binary data, e.g. as base64): %w", i, transport.ErrInvalid)
	}
	if !m.Time.IsZero() && m.Time.UnixMilli() <= 0 {
		return 0, fmt.Errorf("upstash: message %d: time %v is not after 1970 (the REST API takes epoch milliseconds): %w", i, m.Time, transport.ErrInvalid)
	}
	size := 64 + len(m.Topic) + len(m.Key) + len(m.Value)
	for j, h := range m.Headers {
		if !utf8.ValidString(h.Key) || !utf8.ValidString(h.Value) {
			return 0, fmt.Errorf("upstash: message %d: header %q is not valid UTF-8: %w", i, h.Key, transport.ErrInvalid)
		}
		size += 24 + len(m.Headers[j].Key) + len(m.Headers[j].Value)
	}
	return size, nil
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

// messagesAnswer is the answer of POST /consume or POST /fetch.
type messagesAnswer struct{ msgs []transport.Message }

// decodeBudget is what decoding a consume or fetch answer of n bytes may
// allocate for its records' and headers' structures (see
// restwire.DecodeMessagesLimited): 4 bytes per byte read plus 1 MiB. A
// minimal real record (`{"topic":"t","partition":0,"offset":0}`, 39 bytes)
// costs about 3.3 bytes per byte, so every real answer fits, while 16 MiB of
// [{},{},...], which would cost 43 bytes per byte (2.1 GiB once slice growth
// is counted), stops at 65 MiB.
func decodeBudget(n int) int { return 4*n + 1<<20 }

func (a *messagesAnswer) decodeJSON(ctx context.Context, data []byte) (err error) {
	a.msgs, err = restwire.DecodeMessagesLimited(ctx, data, decodeBudget(len(data)))
	return err
}

// metadataAnswer is the answer of POST /produce.
type metadataAnswer struct{ meta []restwire.Metadata }

func (a *metadataAnswer) decodeJSON(_ context.Context, data []byte) (err error) {
	a.meta, err = restwire.DecodeMetadata(data)
	return err
}

// jsonDecoder is an answer that decodes itself (see Transport.attempt),
// stopping when ctx ends.
type jsonDecoder interface {
	decodeJSON(ctx context.Context, data []byte) error
}

// msToTimeout converts a wait to the API's "timeout" in whole ms, rounding
// up so a short positive wait does not become "no wait", and clamping to the
// server's maximum.
func msToTimeout(d time.Duration) *float64 {
	ms := float64(timeoutMs(d))
	return &ms
}

// timeoutMs is msToTimeout's value.
func timeoutMs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	d = min(d, maxServerTimeout)
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
