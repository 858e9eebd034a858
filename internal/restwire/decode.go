package restwire

import (
	"encoding/json"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The hand-written decoders of the hot bodies: a produce body on the
// server, the answers of consume, fetch and produce on the client. See the
// package doc for what they accept and what they leave to encoding/json.

// DecodeTopicMessages decodes a POST /produce body of one TopicMessage
// object or an array of them, as the server reads it: the fast path of
// decoding the body with encoding/json into a TopicMessage (for an object)
// or a []TopicMessage (for an array). A field given twice takes its last
// value, as with encoding/json. The values share one allocation.
func DecodeTopicMessages(body []byte) (items []TopicMessage, ok bool) {
	d := newDecoder(body)
	d.ws()
	if d.i >= len(d.b) {
		return nil, false
	}
	if d.b[d.i] == '{' {
		items = make([]TopicMessage, 1)
		if !d.topicMessage(&items[0]) || !d.end() {
			return nil, false
		}
		return items, true
	}
	empty, ok := d.open('[')
	if !ok {
		return nil, false
	}
	items = make([]TopicMessage, 0, 16)
	for more := !empty; more; {
		items = append(items, TopicMessage{})
		if !d.topicMessage(&items[len(items)-1]) {
			return nil, false
		}
		if more, ok = d.more(']'); !ok {
			return nil, false
		}
	}
	if !d.end() {
		return nil, false
	}
	return items, true
}

// topicMessage decodes one TopicMessage object into it.
func (d *decoder) topicMessage(it *TopicMessage) bool {
	empty, ok := d.open('{')
	if !ok {
		return false
	}
	for more := !empty; more; {
		key, ok := d.key()
		if !ok {
			return false
		}
		switch string(key) {
		case "topic":
			it.Topic, ok = d.topic()
		case "key":
			it.Key, ok = d.string(false)
		case "value":
			it.Value.Bytes, ok = d.str()
			it.Value.Set = true
		case "partition":
			var p int32
			p, ok = d.int32()
			it.Partition = &p
		case "timestamp":
			var ts int64
			ts, ok = d.int64()
			it.Timestamp = &ts
		case "headers":
			it.Headers, ok = d.wireHeaders()
		default:
			ok = false
		}
		if !ok {
			return false
		}
		if more, ok = d.more('}'); !ok {
			return false
		}
	}
	return true
}

// wireHeaders decodes a headers array; [] gives an empty, non-nil slice.
func (d *decoder) wireHeaders() ([]Header, bool) {
	empty, ok := d.open('[')
	if !ok {
		return nil, false
	}
	hs := []Header{}
	for more := !empty; more; {
		k, v, ok := d.header()
		if !ok {
			return nil, false
		}
		hs = append(hs, Header{Key: k, Value: v})
		if more, ok = d.more(']'); !ok {
			return nil, false
		}
	}
	return hs, true
}

// DecodeMessages decodes the answer of POST /consume or POST /fetch, an
// array of ConsumedMessage objects, into Messages as the client sees them
// (ConsumedMessage.Message): on the fast path when it can, else with
// encoding/json, whose error it returns.
func DecodeMessages(data []byte) ([]transport.Message, error) {
	if msgs, ok := decodeMessagesFast(data); ok {
		return msgs, nil
	}
	var ws []ConsumedMessage
	if err := json.Unmarshal(data, &ws); err != nil {
		return nil, err
	}
	return Messages(ws), nil
}

// messageDecoder decodes consumed messages; all their headers share one
// backing array.
type messageDecoder struct {
	decoder
	headers []transport.Header
}

// decodeMessagesFast is the fast path of DecodeMessages. A field given
// twice gives up (encoding/json's rules for a repeated array are subtle).
func decodeMessagesFast(data []byte) ([]transport.Message, bool) {
	d := messageDecoder{decoder: newDecoder(data)}
	empty, ok := d.open('[')
	if !ok {
		return nil, false
	}
	msgs := make([]transport.Message, 0, 8)
	for more := !empty; more; {
		m, ok := d.message()
		if !ok {
			return nil, false
		}
		msgs = append(msgs, m)
		if more, ok = d.more(']'); !ok {
			return nil, false
		}
	}
	if !d.end() {
		return nil, false
	}
	return msgs, true
}

// Fields of a ConsumedMessage, as bits of a set.
const (
	fieldTopic = 1 << iota
	fieldPartition
	fieldOffset
	fieldTimestamp
	fieldKey
	fieldValue
	fieldHeaders
)

// message decodes one ConsumedMessage object.
func (d *messageDecoder) message() (m transport.Message, ok bool) {
	empty, ok := d.open('{')
	if !ok {
		return m, false
	}
	var (
		seen  int
		ts    int64
		hdrAt = len(d.headers)
	)
	for more := !empty; more; {
		key, ok := d.key()
		if !ok {
			return m, false
		}
		var f int
		switch string(key) {
		case "topic":
			f = fieldTopic
			m.Topic, ok = d.string(true)
		case "key":
			f = fieldKey
			m.Key, ok = d.string(true)
		case "value":
			f = fieldValue
			m.Value, ok = d.str()
		case "partition":
			f = fieldPartition
			m.Partition, ok = d.int32()
		case "offset":
			f = fieldOffset
			m.Offset, ok = d.int64()
		case "timestamp":
			f = fieldTimestamp
			ts, ok = d.int64()
		case "headers":
			f = fieldHeaders
			ok = d.headerList()
		default:
			ok = false
		}
		if !ok || seen&f != 0 {
			return m, false // unknown or repeated field, or a bad value
		}
		seen |= f
		if more, ok = d.more('}'); !ok {
			return m, false
		}
	}
	if m.Value == nil {
		m.Value = []byte{} // as []byte(w.Value) of an absent value
	}
	if ts != 0 {
		m.Time = time.UnixMilli(ts)
	}
	if len(d.headers) > hdrAt {
		m.Headers = d.headers[hdrAt:len(d.headers):len(d.headers)]
	}
	return m, true
}

// headerList decodes a headers array onto d.headers.
func (d *messageDecoder) headerList() bool {
	empty, ok := d.open('[')
	if !ok {
		return false
	}
	for more := !empty; more; {
		k, v, ok := d.header()
		if !ok {
			return false
		}
		d.headers = append(d.headers, transport.Header{Key: k, Value: v})
		if more, ok = d.more(']'); !ok {
			return false
		}
	}
	return true
}

// DecodeMetadata decodes the answer of POST /produce, an array of Metadata
// objects: on the fast path when it can, else with encoding/json, whose
// error it returns.
func DecodeMetadata(data []byte) ([]Metadata, error) {
	if meta, ok := decodeMetadataFast(data); ok {
		return meta, nil
	}
	var meta []Metadata
	err := json.Unmarshal(data, &meta)
	return meta, err
}

// decodeMetadataFast is the fast path of DecodeMetadata. A field given
// twice takes its last value, as with encoding/json.
func decodeMetadataFast(data []byte) ([]Metadata, bool) {
	d := decoder{b: data} // short strings only: the arena grows as needed
	empty, ok := d.open('[')
	if !ok {
		return nil, false
	}
	meta := make([]Metadata, 0, 8)
	for more := !empty; more; {
		var md Metadata
		if !d.metadata(&md) {
			return nil, false
		}
		meta = append(meta, md)
		if more, ok = d.more(']'); !ok {
			return nil, false
		}
	}
	if !d.end() {
		return nil, false
	}
	return meta, true
}

// metadata decodes one Metadata object into md.
func (d *decoder) metadata(md *Metadata) bool {
	empty, ok := d.open('{')
	if !ok {
		return false
	}
	for more := !empty; more; {
		key, ok := d.key()
		if !ok {
			return false
		}
		switch string(key) {
		case "topic":
			md.Topic, ok = d.string(true)
		case "error":
			md.Error, ok = d.string(true)
		case "partition":
			md.Partition, ok = d.int32()
		case "offset":
			md.Offset, ok = d.int64()
		case "timestamp":
			md.Timestamp, ok = d.int64()
		default:
			ok = false
		}
		if !ok {
			return false
		}
		if more, ok = d.more('}'); !ok {
			return false
		}
	}
	return true
}
