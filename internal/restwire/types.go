package restwire

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The wire shapes (UPSTASH_REST.md §3–§6). One type serves both ends: the
// fields the server must tell absent from zero are pointers, and the fields
// the client leaves out when they are unset carry omitempty (which changes
// nothing when decoding).

// Header is a record header on the wire: {"key": "...", "value": "..."}.
type Header struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// TopicMessage is a Message / TopicMessage of §3.1: one element of a
// POST /produce body. The client writes it with AppendTopicMessage; the
// server reads it with DecodeTopicMessages or encoding/json.
type TopicMessage struct {
	Topic     string   `json:"topic"`
	Partition *int32   `json:"partition,omitempty"`
	Timestamp *int64   `json:"timestamp,omitempty"`
	Key       string   `json:"key,omitempty"`
	Value     Value    `json:"value"`
	Headers   []Header `json:"headers,omitempty"`
}

// Value is a record value as the server reads it. The documented type is a
// JSON string, which becomes the value's bytes; any other JSON value
// (number, object, array, boolean) is accepted too and kept as its JSON
// text. null counts as absent (Set false).
type Value struct {
	Bytes []byte
	Set   bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *Value) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	v.Set = true
	if len(data) >= 2 && data[0] == '"' {
		inner := data[1 : len(data)-1]
		if bytes.IndexByte(inner, '\\') < 0 {
			// No escapes: the text between the quotes is the value
			// (encoding/json has already checked the token).
			v.Bytes = append(make([]byte, 0, len(inner)), inner...)
			return nil
		}
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v.Bytes = []byte(s)
		return nil
	}
	v.Bytes = append([]byte(nil), data...)
	return nil
}

// Metadata is one element of a produce answer (§3.1). The server writes it
// with AppendMetadata; the client reads it with DecodeMetadata.
type Metadata struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	// Error is not in the Upstash docs; a server may report a per-record
	// failure this way, and the client refuses to report such a record as
	// produced. The project's server never writes it.
	Error string `json:"error,omitempty"`
}

// ConsumedMessage is a ConsumedMessage of §4.3: one element of a consume or
// fetch answer. The server writes it with AppendConsumed; the client reads
// it with DecodeMessages.
type ConsumedMessage struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Timestamp int64    `json:"timestamp"`
	Key       string   `json:"key"`
	Value     string   `json:"value"`
	Headers   []Header `json:"headers"`
}

// Message converts w as the client sees it: timestamp 0 is no time, and no
// headers are nil headers.
func (w *ConsumedMessage) Message() transport.Message {
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

// Messages converts each of ws with Message.
func Messages(ws []ConsumedMessage) []transport.Message {
	out := make([]transport.Message, len(ws))
	for i := range ws {
		out[i] = ws[i].Message()
	}
	return out
}

// TopicPartitionOffset is a TopicPartition or a TopicPartitionOffset of
// §5–§6: an element of a commit, committed, fetch or offsets body, and of
// the answers of committed and offsets. Partition and Offset are pointers so
// that the server tells an absent field from 0; the client always sets
// Partition, and Offset where the shape has one (without it, the offset is
// left out).
type TopicPartitionOffset struct {
	Topic     string `json:"topic"`
	Partition *int32 `json:"partition"`
	Offset    *int64 `json:"offset,omitempty"`
}

// ConsumeRequest is the ConsumeRequest of §4.1. The client sends Topics and
// Timeout; the server also takes the single Topic.
type ConsumeRequest struct {
	Topic   string   `json:"topic,omitempty"`
	Topics  []string `json:"topics"`
	Timeout *float64 `json:"timeout"`
}

// CarryingConsumeRequest is a ConsumeRequest with the fields of the REST
// server's extension of POST /consume (restserver.CarryHeader): records
// to produce and offsets to commit before the long poll, each kept as the
// JSON it was written in. Absent, both are nil; null is "null".
type CarryingConsumeRequest struct {
	ConsumeRequest
	// Produce is a TopicMessage object or an array of them.
	Produce json.RawMessage `json:"produce"`
	// Commit is a TopicPartitionOffset object or an array of them.
	Commit json.RawMessage `json:"commit"`
	// Records is Produce decoded, when DecodeCarryingConsumeRequest's fast
	// path took it in the same pass; nil otherwise (encoding/json never
	// sets it), and the reader then decodes Produce.
	Records []TopicMessage `json:"-"`
}

// FetchRequest is the FetchRequest of §6.1. The client sends
// TopicPartitionOffsets and Timeout; the server also takes the single
// Topic, Partition and Offset.
//
// Produce and Commit are not Upstash's: Produce is the REST server's
// extension of POST /fetch (restserver.CarryHeader), records to produce
// before the fetch, kept as the JSON they were written in, as in
// CarryingConsumeRequest; Commit is read only so that the server can
// refuse it (a fetch has no group to commit for). Absent, both are nil;
// null is "null".
type FetchRequest struct {
	Topic                 string                 `json:"topic,omitempty"`
	Partition             *int32                 `json:"partition,omitempty"`
	Offset                *int64                 `json:"offset,omitempty"`
	TopicPartitionOffsets []TopicPartitionOffset `json:"topicPartitionOffsets"`
	Timeout               *float64               `json:"timeout"`
	// Produce is a TopicMessage object or an array of them.
	Produce json.RawMessage `json:"produce,omitempty"`
	// Commit is whatever the body held under "commit".
	Commit json.RawMessage `json:"commit,omitempty"`
	// Records is Produce decoded, when DecodeFetchRequest's fast path took
	// it in the same pass; nil otherwise (encoding/json never sets it),
	// and the reader then decodes Produce.
	Records []TopicMessage `json:"-"`
}

// Values returns tp's partition and offset, 0 for an absent one.
func (tp *TopicPartitionOffset) Values() (partition int32, offset int64) {
	if tp.Partition != nil {
		partition = *tp.Partition
	}
	if tp.Offset != nil {
		offset = *tp.Offset
	}
	return partition, offset
}
