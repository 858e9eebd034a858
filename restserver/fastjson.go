package restserver

import (
	"math"
	"unicode/utf8"
)

// Fast path for produce bodies, the server's hot path.
//
// fastDecodeProduce decodes a body of one message object or an array of
// them, as sent by the SDKs and by hand-written clients: objects with the
// exact lower-case fields topic, partition, timestamp, key, value and
// headers, string values with the common escapes, integers for partition
// and timestamp. On anything else (another field, a non-string value, null,
// \u escapes, invalid UTF-8, a float, malformed JSON...) it gives up and
// reports ok=false, and the caller decodes the body with encoding/json,
// which also words the errors. It never accepts a body that encoding/json
// rejects, and where it succeeds its result equals encoding/json's
// (checked by FuzzFastDecodeProduce).
func fastDecodeProduce(body []byte) (items []produceItem, ok bool) {
	s := scanner{b: body}
	s.ws()
	if s.i >= len(s.b) {
		return nil, false
	}
	switch s.b[s.i] {
	case '{':
		items = make([]produceItem, 1)
		if !s.object(&items[0]) {
			return nil, false
		}
	case '[':
		s.i++
		s.ws()
		items = make([]produceItem, 0, 16)
		if s.peek() == ']' {
			s.i++
		} else {
			for {
				items = append(items, produceItem{})
				s.ws()
				if !s.object(&items[len(items)-1]) {
					return nil, false
				}
				s.ws()
				c := s.next()
				if c == ']' {
					break
				}
				if c != ',' {
					return nil, false
				}
			}
		}
	default:
		return nil, false
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	return items, true
}

type scanner struct {
	b         []byte
	i         int
	lastTopic string            // reused when the next topic is the same
	interned  map[string]string // short header strings seen in this body
}

// Bounds on the strings the scanner interns.
const (
	maxInternLen   = 32
	maxInternCount = 256
)

// intern returns v as a string, shared with the equal short strings seen
// before in the same body: header names and small header values (a version,
// a kind, a content type) repeat from record to record, and sharing them
// saves an allocation each, and memory in the backend that keeps them.
func (s *scanner) intern(v []byte) string {
	if len(v) > maxInternLen {
		return string(v)
	}
	if str, ok := s.interned[string(v)]; ok {
		return str
	}
	str := string(v)
	if s.interned == nil {
		s.interned = make(map[string]string, 16)
	}
	if len(s.interned) < maxInternCount {
		s.interned[str] = str
	}
	return str
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) next() byte {
	if s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		return c
	}
	return 0
}

// object decodes one message object at s.i.
func (s *scanner) object(it *produceItem) bool {
	if s.next() != '{' {
		return false
	}
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, copied, ok := s.str()
		if !ok || copied {
			return false
		}
		s.ws()
		if s.next() != ':' {
			return false
		}
		s.ws()
		switch string(key) {
		case "topic":
			v, _, ok := s.str()
			if !ok {
				return false
			}
			if string(v) != s.lastTopic {
				s.lastTopic = string(v)
			}
			it.Topic = s.lastTopic
		case "key":
			v, _, ok := s.str()
			if !ok {
				return false
			}
			it.Key = string(v)
		case "value":
			v, copied, ok := s.str()
			if !ok {
				return false
			}
			if !copied {
				v = append(make([]byte, 0, len(v)), v...)
			}
			it.Value = jsonValue{b: v, set: true}
		case "partition":
			n, ok := s.int(math.MinInt32, math.MaxInt32)
			if !ok {
				return false
			}
			p := int32(n)
			it.Partition = &p
		case "timestamp":
			n, ok := s.int(math.MinInt64, math.MaxInt64)
			if !ok {
				return false
			}
			it.Timestamp = &n
		case "headers":
			hs, ok := s.headers()
			if !ok {
				return false
			}
			it.Headers = hs
		default:
			return false
		}
		s.ws()
		switch s.next() {
		case ',':
		case '}':
			return true
		default:
			return false
		}
	}
}

// headers decodes [{"key": "...", "value": "..."}, ...].
func (s *scanner) headers() ([]wireHeader, bool) {
	if s.next() != '[' {
		return nil, false
	}
	hs := []wireHeader{}
	s.ws()
	if s.peek() == ']' {
		s.i++
		return hs, true
	}
	for {
		s.ws()
		if s.next() != '{' {
			return nil, false
		}
		var h wireHeader
		s.ws()
		if s.peek() == '}' {
			s.i++
		} else {
			for done := false; !done; {
				s.ws()
				key, copied, ok := s.str()
				if !ok || copied {
					return nil, false
				}
				s.ws()
				if s.next() != ':' {
					return nil, false
				}
				s.ws()
				v, _, ok := s.str()
				if !ok {
					return nil, false
				}
				switch string(key) {
				case "key":
					h.Key = s.intern(v)
				case "value":
					h.Value = s.intern(v)
				default:
					return nil, false
				}
				s.ws()
				switch s.next() {
				case ',':
				case '}':
					done = true
				default:
					return nil, false
				}
			}
		}
		hs = append(hs, h)
		s.ws()
		switch s.next() {
		case ',':
		case ']':
			return hs, true
		default:
			return nil, false
		}
	}
}

// str decodes a JSON string at s.i. Without escapes the result aliases the
// body (copied=false); with escapes it is a new slice (copied=true).
// Strings with \u escapes, control characters or invalid UTF-8 give up.
func (s *scanner) str() (v []byte, copied bool, ok bool) {
	if s.next() != '"' {
		return nil, false, false
	}
	start := s.i
	ascii := true
	var out []byte
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			seg := s.b[start:s.i]
			s.i++
			if out != nil {
				out = append(out, seg...)
				v, copied = out, true
			} else {
				v = seg
			}
			if !ascii && !utf8.Valid(v) {
				return nil, false, false
			}
			return v, copied, true
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			if out == nil {
				out = make([]byte, 0, s.i-start+32)
			}
			out = append(out, s.b[start:s.i]...)
			var r byte
			switch s.b[s.i+1] {
			case '"':
				r = '"'
			case '\\':
				r = '\\'
			case '/':
				r = '/'
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
			default: // \u and invalid escapes
				return nil, false, false
			}
			out = append(out, r)
			s.i += 2
			start = s.i
		case c < 0x20:
			return nil, false, false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			s.i++
		}
	}
	return nil, false, false
}

// int decodes a JSON integer (no fraction or exponent) within [lo, hi].
func (s *scanner) int(lo, hi int64) (int64, bool) {
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || (digits > 1 && s.b[start] == '0') {
		return 0, false
	}
	if c := s.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, false
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
