package upstash

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Fast paths for the client's hot JSON: the records of consume and fetch
// answers, the metadata of produce answers and the TopicMessages of produce
// requests. Under load the client spends most of its time here, on the
// goroutines that feed one long poll or one produce request at a time, so
// these are hand-written instead of going through encoding/json's
// reflection.
//
// The decoders accept the documented shapes: arrays of objects with the
// exact lower-case field names, strings with any escape but a \u escape of
// a UTF-16 surrogate, integers for the numeric fields, any JSON whitespace.
// On anything else (another field, a repeated one, null, a float, invalid
// UTF-8, a surrogate, malformed JSON...) they give
// up and the caller decodes with encoding/json, which also words the
// errors. Where they succeed, their result equals encoding/json's (checked
// by FuzzDecodeMessages and FuzzDecodeMetadata).

// messagesAnswer is the answer of POST /consume or POST /fetch.
type messagesAnswer struct{ msgs []transport.Message }

func (a *messagesAnswer) decodeJSON(data []byte) error {
	if msgs, ok := fastMessages(data); ok {
		a.msgs = msgs
		return nil
	}
	var ws []wireConsumed
	if err := json.Unmarshal(data, &ws); err != nil {
		return err
	}
	a.msgs = toMessages(ws)
	return nil
}

// metadataAnswer is the answer of POST /produce.
type metadataAnswer struct{ meta []wireMetadata }

func (a *metadataAnswer) decodeJSON(data []byte) error {
	if meta, ok := fastMetadata(data); ok {
		a.meta = meta
		return nil
	}
	return json.Unmarshal(data, &a.meta)
}

// jsonDecoder is an answer that decodes itself (see Transport.attempt).
type jsonDecoder interface{ decodeJSON(data []byte) error }

// decoder is a JSON scanner over one answer.
type decoder struct {
	b []byte
	i int

	// arena receives the unescaped bytes of every value; a value is a
	// capacity-limited slice of it, so one answer costs one allocation
	// for all its values.
	arena []byte
	// interned short strings (topics, header keys, small header values),
	// which repeat from record to record.
	interned map[string]string
	headers  []transport.Header // backing store of the records' headers
}

const (
	maxInternLen   = 32
	maxInternCount = 256
)

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips whitespace and takes c, reporting whether it was there.
func (d *decoder) consume(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// open takes the opening bracket or brace c and reports whether the array
// or object is empty (its closer taken too).
func (d *decoder) open(c byte) (empty, ok bool) {
	if !d.consume(c) {
		return false, false
	}
	closer := byte(']')
	if c == '{' {
		closer = '}'
	}
	return d.consume(closer), true
}

// more takes the "," before another element or member (more) or the
// closer of the array or object (!more).
func (d *decoder) more(closer byte) (more, ok bool) {
	if d.consume(',') {
		return true, true
	}
	return false, d.consume(closer)
}

// key takes a member's name and its colon; the name aliases the input.
func (d *decoder) key() ([]byte, bool) {
	d.ws()
	k, ok := d.rawString()
	if !ok || !d.consume(':') {
		return nil, false
	}
	d.ws()
	return k, true
}

// rawString decodes a string without escapes (field names), aliasing the
// input.
func (d *decoder) rawString() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

// str decodes a JSON string into the arena and returns its bytes there.
func (d *decoder) str() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	d.i++
	start := len(d.arena)
	ascii := true
	seg := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.arena = append(d.arena, d.b[seg:d.i]...)
			d.i++
			v := d.arena[start:len(d.arena):len(d.arena)]
			if !ascii && !utf8.Valid(v) {
				return nil, false // encoding/json would replace the bad bytes
			}
			return v, true
		case c == '\\':
			d.arena = append(d.arena, d.b[seg:d.i]...)
			if d.i+1 >= len(d.b) {
				return nil, false
			}
			var r byte
			switch d.b[d.i+1] {
			case '"', '\\', '/':
				r = d.b[d.i+1]
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				if d.i+6 > len(d.b) {
					return nil, false
				}
				r, ok := hex4(d.b[d.i+2 : d.i+6])
				if !ok || utf16.IsSurrogate(r) {
					return nil, false // pairs and lone halves: encoding/json's rules
				}
				d.arena = utf8.AppendRune(d.arena, r)
				d.i += 6
				seg = d.i
				continue
			default:
				return nil, false
			}
			d.arena = append(d.arena, r)
			d.i += 2
			seg = d.i
		case c < 0x20:
			return nil, false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			d.i++
		}
	}
	return nil, false
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// string decodes a JSON string as a Go string, interning short ones.
func (d *decoder) string() (string, bool) {
	v, ok := d.str()
	if !ok {
		return "", false
	}
	d.arena = d.arena[:len(d.arena)-len(v)] // strings are copied out: reuse the space
	if len(v) > maxInternLen {
		return string(v), true
	}
	if s, ok := d.interned[string(v)]; ok {
		return s, true
	}
	s := string(v)
	if d.interned == nil {
		d.interned = make(map[string]string, 16)
	}
	if len(d.interned) < maxInternCount {
		d.interned[s] = s
	}
	return s, true
}

// int decodes a JSON integer (no fraction or exponent) within [lo, hi].
func (d *decoder) int(lo, hi int64) (int64, bool) {
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	start := d.i
	var n uint64
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(d.b[d.i]-'0')
		d.i++
	}
	digits := d.i - start
	if digits == 0 || (digits > 1 && d.b[start] == '0') {
		return 0, false
	}
	if d.i < len(d.b) {
		if c := d.b[d.i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	if neg {
		if n > uint64(-lo) { // -MinInt64 wraps to 1<<63 as a uint64: right
			return 0, false
		}
		return -int64(n), true
	}
	if n > uint64(hi) {
		return 0, false
	}
	return int64(n), true
}

// end reports whether only whitespace is left.
func (d *decoder) end() bool {
	d.ws()
	return d.i == len(d.b)
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

// fastMessages decodes an array of ConsumedMessage objects straight into
// Messages, as toMessages(json.Unmarshal(data)) would make them. A field
// given twice gives up (encoding/json's rules for a repeated array are
// subtle).
func fastMessages(data []byte) ([]transport.Message, bool) {
	d := decoder{b: data, arena: make([]byte, 0, len(data))}
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

// message decodes one ConsumedMessage object.
func (d *decoder) message() (m transport.Message, ok bool) {
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
			m.Topic, ok = d.string()
		case "key":
			f = fieldKey
			m.Key, ok = d.string()
		case "value":
			f = fieldValue
			m.Value, ok = d.str()
		case "partition":
			f = fieldPartition
			var n int64
			n, ok = d.int(math.MinInt32, math.MaxInt32)
			m.Partition = int32(n)
		case "offset":
			f = fieldOffset
			m.Offset, ok = d.int(math.MinInt64, math.MaxInt64)
		case "timestamp":
			f = fieldTimestamp
			ts, ok = d.int(math.MinInt64, math.MaxInt64)
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

// headerList decodes [{"key": "...", "value": "..."}, ...] onto d.headers.
func (d *decoder) headerList() bool {
	empty, ok := d.open('[')
	if !ok {
		return false
	}
	for more := !empty; more; {
		empty, ok := d.open('{')
		if !ok {
			return false
		}
		var h transport.Header
		for more := !empty; more; {
			key, ok := d.key()
			if !ok {
				return false
			}
			switch string(key) {
			case "key":
				h.Key, ok = d.string()
			case "value":
				h.Value, ok = d.string()
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
		d.headers = append(d.headers, h)
		if more, ok = d.more(']'); !ok {
			return false
		}
	}
	return true
}

// fastMetadata decodes an array of Metadata objects.
func fastMetadata(data []byte) ([]wireMetadata, bool) {
	d := decoder{b: data}
	empty, ok := d.open('[')
	if !ok {
		return nil, false
	}
	meta := make([]wireMetadata, 0, 8)
	for more := !empty; more; {
		empty, ok := d.open('{')
		if !ok {
			return nil, false
		}
		var md wireMetadata
		for more := !empty; more; {
			key, ok := d.key()
			if !ok {
				return nil, false
			}
			switch string(key) {
			case "topic":
				md.Topic, ok = d.string()
			case "error":
				md.Error, ok = d.string()
			case "partition":
				var n int64
				n, ok = d.int(math.MinInt32, math.MaxInt32)
				md.Partition = int32(n)
			case "offset":
				md.Offset, ok = d.int(math.MinInt64, math.MaxInt64)
			case "timestamp":
				md.Timestamp, ok = d.int(math.MinInt64, math.MaxInt64)
			default:
				ok = false
			}
			if !ok {
				return nil, false
			}
			if more, ok = d.more('}'); !ok {
				return nil, false
			}
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

// appendProduce appends m as one TopicMessage, as marshal(wireProduce)
// would, minus its escaping of U+2028 and U+2029 (valid raw in JSON). m has
// been validated: every string is UTF-8.
func appendProduce(b []byte, m *transport.Message) []byte {
	b = append(b, `{"topic":`...)
	b = appendString(b, m.Topic)
	if m.ManualPartition {
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(m.Partition), 10)
	}
	if !m.Time.IsZero() {
		b = append(b, `,"timestamp":`...)
		b = strconv.AppendInt(b, m.Time.UnixMilli(), 10)
	}
	if m.Key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, m.Key)
	}
	b = append(b, `,"value":`...)
	b = appendString(b, m.Value)
	if len(m.Headers) > 0 {
		b = append(b, `,"headers":[`...)
		for i, h := range m.Headers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, h.Key)
			b = append(b, `,"value":`...)
			b = appendString(b, h.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s must be valid UTF-8. Only '"',
// '\\' and control characters are escaped, with the short forms where JSON
// has them, so the project's REST server reads it on its fast path.
func appendString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
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
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
