package restserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Wire shapes (UPSTASH_REST.md §3–§6). Responses are built by the append
// functions below, in the documented field order, without reflection.

// wireHeader is a record header on the wire: {"key": "...", "value": "..."}.
type wireHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// produceItem is a Message / TopicMessage of §3.1.
type produceItem struct {
	Topic     string       `json:"topic"`
	Partition *int32       `json:"partition"`
	Timestamp *int64       `json:"timestamp"`
	Key       string       `json:"key"`
	Value     jsonValue    `json:"value"`
	Headers   []wireHeader `json:"headers"`
}

// jsonValue is a record value on the wire. The documented type is a JSON
// string, which becomes the value's bytes; any other JSON value (number,
// object, array, boolean) is accepted too and kept as its JSON text. null
// counts as absent.
type jsonValue struct {
	b   []byte
	set bool
}

func (v *jsonValue) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	v.set = true
	if len(data) >= 2 && data[0] == '"' {
		inner := data[1 : len(data)-1]
		if bytes.IndexByte(inner, '\\') < 0 {
			// No escapes: the text between the quotes is the value
			// (encoding/json has already checked the token).
			v.b = append(make([]byte, 0, len(inner)), inner...)
			return nil
		}
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v.b = []byte(s)
		return nil
	}
	v.b = append([]byte(nil), data...)
	return nil
}

// topicPartition is a TopicPartition / TopicPartitionOffset of §5–§6 as
// read from a request; pointers tell absent fields apart.
type topicPartition struct {
	Topic     string `json:"topic"`
	Partition *int32 `json:"partition"`
	Offset    *int64 `json:"offset"`
}

// consumeRequest is the ConsumeRequest of §4.1.
type consumeRequest struct {
	Topic   string   `json:"topic"`
	Topics  []string `json:"topics"`
	Timeout *float64 `json:"timeout"`
}

// fetchRequest is the FetchRequest of §6.1.
type fetchRequest struct {
	Topic                 string           `json:"topic"`
	Partition             *int32           `json:"partition"`
	Offset                *int64           `json:"offset"`
	TopicPartitionOffsets []topicPartition `json:"topicPartitionOffsets"`
	Timeout               *float64         `json:"timeout"`
}

// bodyShape is what a request body holds.
type bodyShape int

const (
	bodyEmpty  bodyShape = iota // nothing but white space
	bodyObject                  // a JSON object
	bodyArray                   // a JSON array
	bodyOther                   // anything else
)

func shapeOf(body []byte) bodyShape {
	body = bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(body) == 0:
		return bodyEmpty
	case body[0] == '{':
		return bodyObject
	case body[0] == '[':
		return bodyArray
	}
	return bodyOther
}

// decodeOneOrMany decodes a body that holds either one T or an array of T.
// An empty body or [] gives an empty slice; what names the expected thing
// in errors.
func decodeOneOrMany[T any](body []byte, what string) ([]T, error) {
	switch shapeOf(body) {
	case bodyEmpty:
		return nil, nil
	case bodyObject:
		var one T
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, malformed(err)
		}
		return []T{one}, nil
	case bodyArray:
		var many []T
		if err := json.Unmarshal(body, &many); err != nil {
			return nil, malformed(err)
		}
		return many, nil
	}
	return nil, badRequest(fmt.Sprintf("malformed JSON: expected %s object or an array of them", what))
}

// decodeObject decodes a body that must hold one JSON object; an empty body
// leaves v as it is.
func decodeObject(body []byte, v any, what string) error {
	switch shapeOf(body) {
	case bodyEmpty:
		return nil
	case bodyObject:
		if err := json.Unmarshal(body, v); err != nil {
			return malformed(err)
		}
		return nil
	}
	return badRequest(fmt.Sprintf("malformed JSON: expected %s object", what))
}

func malformed(err error) *httpError {
	return &httpError{status: http.StatusBadRequest, msg: "malformed JSON: " + err.Error(), err: err}
}

// Response building.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // let big ones go
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// appendMetadata appends a Metadata object of §3.1.
func appendMetadata(b []byte, m *transport.Message) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, m.Topic)
	b = append(b, `,"partition":`...)
	b = appendInt(b, int64(m.Partition))
	b = append(b, `,"offset":`...)
	b = appendInt(b, m.Offset)
	b = append(b, `,"timestamp":`...)
	b = appendInt(b, m.Time.UnixMilli())
	return append(b, '}')
}

// appendConsumed appends a ConsumedMessage object of §4.3: key "" when the
// record has none, headers [] when it has none.
func appendConsumed(b []byte, m *transport.Message) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, m.Topic)
	b = append(b, `,"partition":`...)
	b = appendInt(b, int64(m.Partition))
	b = append(b, `,"offset":`...)
	b = appendInt(b, m.Offset)
	b = append(b, `,"timestamp":`...)
	b = appendInt(b, m.Time.UnixMilli())
	b = append(b, `,"key":`...)
	b = appendJSONString(b, m.Key)
	b = append(b, `,"value":`...)
	b = appendJSONString(b, m.Value)
	b = append(b, `,"headers":[`...)
	for i, h := range m.Headers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendJSONString(b, h.Key)
		b = append(b, `,"value":`...)
		b = appendJSONString(b, h.Value)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendTopicPartitionOffset appends {"topic":..,"partition":..,"offset":..}.
func appendTopicPartitionOffset(b []byte, o TopicPartitionOffset) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, o.Topic)
	b = append(b, `,"partition":`...)
	b = appendInt(b, int64(o.Partition))
	b = append(b, `,"offset":`...)
	b = appendInt(b, o.Offset)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as encoding/json does
// without HTML escaping: invalid UTF-8 becomes U+FFFD, U+2028 and U+2029 are
// escaped.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
