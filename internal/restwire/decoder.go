package restwire

import (
	"hash/maphash"
	"math"
	"math/bits"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/kafkarpc/kafkarpc/internal/jsonhex"
)

// decoder is a JSON scanner over one body, with the building blocks of the
// hand-written decoders. Every method that reports ok=false has met
// something outside the shapes the decoders know; the caller then gives up
// (and its caller decodes with encoding/json).
type decoder struct {
	b []byte
	i int

	// arena receives the unescaped bytes of strings with escapes (see
	// strView) and of every string taken with str or kept (see keep). On
	// the client a value is a capacity-limited slice of it and long keys
	// and header values are strings on it, so one answer costs one
	// allocation for all of them: newDecoder makes it the body's length,
	// which the unescaped strings never exceed (short strings are copied
	// out and their space reused), DecodeMessagesLimited the body less
	// its smallest objects' bytes (arenaSize). Should it grow, what is on
	// it stays on the memory it was made on, never written again. On the
	// server it is scratch space, every string copied out.
	arena []byte
	// interned short strings (topics, header keys, small header values),
	// which repeat from record to record: the first internSmall of them in
	// small, scanned in order (most bodies hold a few records, for which a
	// map would cost more than it saves), the rest in interned.
	small    [internSmall]string
	nSmall   int
	interned map[string]string
	// lastTopic is reused when the next topic is the same.
	lastTopic string
	// hdrs is scratch space for one record's headers on the server, which
	// are then copied out at their size: one allocation per record.
	hdrs []Header
	// pending header values of the record being decoded, see header.
	pending []pendingValue
	// inPlace: header values that are not well known or interned, and
	// long record keys, are strings on the arena (the client), not copied
	// out (the server); see keep.
	inPlace bool
	// slabs of the partitions and timestamps a produce body's records
	// point to.
	int32s []int32
	int64s []int64
}

// Bounds on the strings the decoder interns.
const (
	maxInternLen   = 32
	maxInternCount = 256
	internSmall    = 8
)

// newDecoder returns the client's decoder of the answer data (see
// decoder.arena and decoder.inPlace).
func newDecoder(data []byte) decoder { return newDecoderArena(data, len(data)) }

// newDecoderArena is newDecoder with an arena of size bytes' capacity.
func newDecoderArena(data []byte, size int) decoder {
	return decoder{b: data, arena: make([]byte, 0, size), inPlace: true}
}

func (d *decoder) ws() {
	if d.i < len(d.b) && d.b[d.i] > ' ' {
		return // compact JSON: no whitespace between tokens
	}
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

// array decodes an array, each element with elem.
func (d *decoder) array(elem func() bool) bool {
	empty, ok := d.open('[')
	if !ok {
		return false
	}
	for more := !empty; more; {
		if !elem() {
			return false
		}
		if more, ok = d.more(']'); !ok {
			return false
		}
	}
	return true
}

// object decodes an object, each member's value with member, given the
// member's name (which aliases the input).
func (d *decoder) object(member func(name []byte) bool) bool {
	empty, ok := d.open('{')
	if !ok {
		return false
	}
	for more := !empty; more; {
		name, ok := d.key()
		if !ok || !member(name) {
			return false
		}
		if more, ok = d.more('}'); !ok {
			return false
		}
	}
	return true
}

// end reports whether only whitespace is left.
func (d *decoder) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// rawString decodes a string of printable ASCII without escapes (a field
// name), aliasing the input.
func (d *decoder) rawString() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	j := start
	for j+8 <= len(d.b) {
		m := stopBytes(load64(d.b, j), swarMSB)
		if m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			break
		}
		j += 8
	}
	for j < len(d.b) && strClass[d.b[j]] == 0 {
		j++ // the last few bytes, or none when a word held the stop
	}
	if j == len(d.b) || d.b[j] != '"' {
		return nil, false
	}
	d.i = j + 1
	return d.b[start:j], true
}

// strClass classifies a byte inside a JSON string: 0 for printable ASCII
// taken as it is, classStop for '"' and '\\' and control characters (the
// scan stops there), classHigh for a byte of a multi-byte UTF-8 sequence.
var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = classStop
	}
	t['"'], t['\\'] = classStop, classStop
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = classHigh
	}
	return t
}()

const (
	classStop = 1
	classHigh = 2
)

// strView decodes a JSON string. Without escapes the bytes returned alias
// the input (capped at their length); with escapes they are unescaped onto
// the top of the arena. Either way the caller that copies them out may
// truncate the arena back to its length before the call: a string without
// escapes leaves the arena as it was.
func (d *decoder) strView() ([]byte, bool) {
	b := d.b
	if d.i >= len(b) || b[d.i] != '"' {
		return nil, false
	}
	i := d.i + 1
	seg := i
	start := len(d.arena)
	escaped := false
	var high uint64 // the raw bytes taken, or'ed: ASCII while its high bits are clear
	// x is the last word read, at w; m holds its stops (see stopBytes)
	// from i on while i is inside it, after an escape.
	w, x, m := i-8, uint64(0), uint64(0)
	for {
		// Find the next '"', '\\' or control character: eight bytes
		// at a time, the last few one at a time.
		if i-w < 8 || i+8 <= len(b) {
			if i-w < 8 {
				m &^= 1<<(8*(i-w)) - 1 // the stops the escape took
			} else {
				w = i
				x = load64(b, w)
				m = stopBytes(x, 0)
			}
			if m == 0 {
				high |= x // an escape's bytes in it are ASCII
				i = w + 8
				continue
			}
			k := bits.TrailingZeros64(m) // the stop's bit 7: below it, the bytes before it
			high |= x & (1<<k - 1)
			i = w + k>>3
		} else {
			for i < len(b) && strClass[b[i]]&classStop == 0 {
				high |= uint64(b[i])
				i++
			}
			if i == len(b) {
				return nil, false
			}
		}
		switch c := b[i]; {
		case c == '"':
			d.i = i + 1
			var v []byte
			if escaped {
				d.arena = append(d.arena, b[seg:i]...)
				v = d.arena[start:len(d.arena):len(d.arena)]
			} else {
				v = b[seg:i:i]
			}
			if high&swarMSB != 0 && !utf8.Valid(v) {
				return nil, false // encoding/json would replace the bad bytes
			}
			return v, true
		case c == '\\':
			escaped = true
			d.arena = append(d.arena, b[seg:i]...)
			if i+1 < len(b) && (b[i+1] == '"' || b[i+1] == '\\') {
				d.arena = append(d.arena, b[i+1]) // the escapes of JSON in a string
				i += 2
			} else {
				d.i = i
				if !d.escape() {
					return nil, false
				}
				i = d.i
			}
			seg = i
		default: // a control character
			return nil, false
		}
	}
}

// str decodes a JSON string onto the arena and returns its bytes there
// (capped at their length).
func (d *decoder) str() ([]byte, bool) {
	start := len(d.arena)
	v, ok := d.strView()
	if !ok {
		return nil, false
	}
	if len(d.arena) == start {
		d.arena = append(d.arena, v...) // no escapes: v is the input's
	}
	return d.arena[start:len(d.arena):len(d.arena)], true
}

// escape decodes the escape at d.i onto the arena. A \u escape of a UTF-16
// surrogate gives up: pairs and lone halves follow encoding/json's rules.
func (d *decoder) escape() bool {
	if d.i+1 >= len(d.b) {
		return false
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
			return false
		}
		u, ok := jsonhex.Hex4(d.b[d.i+2 : d.i+6])
		if !ok || utf16.IsSurrogate(u) {
			return false
		}
		d.arena = utf8.AppendRune(d.arena, u)
		d.i += 6
		return true
	default:
		return false
	}
	d.arena = append(d.arena, r)
	d.i += 2
	return true
}

// string decodes a JSON string as a Go string; with intern, a short one is
// shared with the equal ones seen before in the same body.
func (d *decoder) string(intern bool) (string, bool) {
	start := len(d.arena)
	v, ok := d.strView()
	if !ok {
		return "", false
	}
	s := d.intern(v, intern)
	d.arena = d.arena[:start] // strings are copied out: reuse the space
	return s, true
}

// intern returns v as a string: with intern and when short, the constant or
// the string seen before in the body that equals it (remembering a new
// one), else a copy.
func (d *decoder) intern(v []byte, intern bool) string {
	if !intern || len(v) > maxInternLen {
		return string(v)
	}
	if s, ok := wellKnown(v); ok {
		return s
	}
	if s, ok := d.lookup(v); ok {
		return s
	}
	s := string(v)
	switch {
	case d.nSmall < internSmall:
		d.small[d.nSmall] = s
		d.nSmall++
	case d.interned == nil:
		d.interned = make(map[string]string, 16)
		fallthrough
	case len(d.interned) < maxInternCount:
		d.interned[s] = s
	}
	return s
}

// lookup returns the interned string equal to v, if there is one.
func (d *decoder) lookup(v []byte) (string, bool) {
	for _, s := range d.small[:d.nSmall] {
		if s == string(v) {
			return s, true
		}
	}
	if d.interned != nil {
		if s, ok := d.interned[string(v)]; ok {
			return s, true
		}
	}
	return "", false
}

// wellKnown returns the constant equal to v when v is one of the header
// keys and values that most records carry (the rpc envelope's, see package
// rpc): those cost no allocation in any body, not just from their second
// time in one body. The switch compares without converting v.
func wellKnown(v []byte) (string, bool) {
	switch string(v) {
	case "rpc-v":
		return "rpc-v", true
	case "rpc-id":
		return "rpc-id", true
	case "rpc-kind":
		return "rpc-kind", true
	case "rpc-method":
		return "rpc-method", true
	case "rpc-from":
		return "rpc-from", true
	case "rpc-reply-to":
		return "rpc-reply-to", true
	case "rpc-reply-partition":
		return "rpc-reply-partition", true
	case "rpc-correlation-id":
		return "rpc-correlation-id", true
	case "rpc-timeout-ms":
		return "rpc-timeout-ms", true
	case "rpc-deadline":
		return "rpc-deadline", true
	case "rpc-error-code":
		return "rpc-error-code", true
	case "rpc-error":
		return "rpc-error", true
	case "rpc-dedup-of":
		return "rpc-dedup-of", true
	case "rpc-dedup-by":
		return "rpc-dedup-by", true
	case "rpc-dedup-reply-to":
		return "rpc-dedup-reply-to", true
	case "content-type":
		return "content-type", true
	case "traceparent":
		return "traceparent", true
	case "application/json":
		return "application/json", true
	case "1":
		return "1", true
	case "request":
		return "request", true
	case "reply":
		return "reply", true
	case "notify":
		return "notify", true
	case "progress":
		return "progress", true
	}
	return "", false
}

// topic decodes a JSON string, a topic name, sharing it with the topic
// before when equal (the records of one body mostly go to one topic), else
// with an equal one of an earlier body (see sharedTopic).
func (d *decoder) topic() (string, bool) {
	start := len(d.arena)
	v, ok := d.strView()
	if !ok {
		return "", false
	}
	if string(v) != d.lastTopic {
		d.lastTopic = sharedTopic(v)
	}
	d.arena = d.arena[:start]
	return d.lastTopic, true
}

// Bounds of the process-wide cache of topic names (see sharedTopic).
const (
	sharedTopics      = 256
	maxSharedTopicLen = 64
)

// sharedTopicSlots caches topic names seen in bodies, one per slot by
// hash: a process talks to a few topics, and each body names them again.
var (
	sharedTopicSlots [sharedTopics]atomic.Pointer[string]
	sharedTopicSeed  = maphash.MakeSeed()
)

// sharedTopic returns v as a string, the cached one when its slot holds an
// equal name, else a new one that takes the slot. Safe for concurrent use;
// a name evicted or lost in a race only costs an allocation.
func sharedTopic(v []byte) string {
	if len(v) > maxSharedTopicLen {
		return string(v)
	}
	slot := &sharedTopicSlots[maphash.Bytes(sharedTopicSeed, v)%sharedTopics]
	if p := slot.Load(); p != nil && *p == string(v) {
		return *p
	}
	s := string(v)
	slot.Store(&s)
	return s
}

// header decodes one {"key": "...", "value": "..."} object, interning the
// key. A value that is well known or already interned is returned as that
// string. Any other: with d.inPlace (the client), it is unescaped onto the
// arena and returned as a string there (see arenaString); else (the
// server) it is returned as "" and recorded in d.pending under index idx
// (the header's index in the caller's list), for the caller to copy out
// with the record's other bytes in one allocation.
func (d *decoder) header(idx int) (key, value string, ok bool) {
	ok = d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "key":
			key, ok = d.string(true)
		case "value":
			value, ok = d.deferredValue(idx)
		}
		return ok
	})
	return key, value, ok
}

// pendingValue is a header value waiting for the end of its record: v (a
// view, see strView) is the value of the header at index idx.
type pendingValue struct {
	idx int
	v   []byte
}

// deferredValue decodes a header value: a constant when well known or
// interned, else with d.inPlace a string on the arena, else "" with its
// bytes recorded in d.pending. A value given twice in one header object
// keeps the last, as encoding/json does: an earlier pending entry of idx is
// superseded.
func (d *decoder) deferredValue(idx int) (string, bool) {
	start := len(d.arena)
	v, ok := d.strView()
	if !ok {
		return "", false
	}
	if n := len(d.pending); n > 0 && d.pending[n-1].idx == idx {
		d.pending = d.pending[:n-1] // superseded; its bytes, if on the arena, stay there unused
	}
	if len(v) <= maxInternLen {
		if s, ok := wellKnown(v); ok {
			d.arena = d.arena[:start]
			return s, true
		}
		if s, ok := d.lookup(v); ok {
			d.arena = d.arena[:start]
			return s, true
		}
	}
	if d.inPlace {
		return d.keep(start, v), true
	}
	if d.pending == nil {
		d.pending = make([]pendingValue, 0, 8)
	}
	d.pending = append(d.pending, pendingValue{idx: idx, v: v})
	return "", true
}

// arenaString decodes a JSON string for the client: a short one as
// d.string(true) does, any other as a string on the arena (see keep).
func (d *decoder) arenaString() (string, bool) {
	start := len(d.arena)
	v, ok := d.strView()
	if !ok {
		return "", false
	}
	if len(v) <= maxInternLen {
		s := d.intern(v, true)
		d.arena = d.arena[:start]
		return s, true
	}
	return d.keep(start, v), true
}

// keep returns v, which strView returned when the arena's length was start,
// as a string on the arena: v itself when strView unescaped it there, else
// a copy appended to the arena. The arena is never truncated below it
// afterwards and its bytes are never written again, so the string stays
// as it is (the client's arena is one allocation for a whole answer, which
// the record values returned as slices of it hold too; a value slice is
// capped at its length, so appending to it cannot reach a string).
func (d *decoder) keep(start int, v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if len(d.arena) == start {
		d.arena = append(d.arena, v...)
	}
	kept := d.arena[start:len(d.arena)]
	return unsafe.String(unsafe.SliceData(kept), len(kept))
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

// int32 decodes a JSON integer that fits an int32.
func (d *decoder) int32() (int32, bool) {
	n, ok := d.int(math.MinInt32, math.MaxInt32)
	return int32(n), ok
}

// int64 decodes a JSON integer that fits an int64.
func (d *decoder) int64() (int64, bool) {
	return d.int(math.MinInt64, math.MaxInt64)
}

// maxRawDepth bounds the nesting rawValue follows; deeper values are left
// to encoding/json.
const maxRawDepth = 64

// rawValue checks that a JSON value of any kind starts at d.i, takes it and
// returns its bytes as written (aliasing the input, capped at their
// length).
func (d *decoder) rawValue() ([]byte, bool) {
	start := d.i
	if !d.skipValue(0) {
		return nil, false
	}
	return d.b[start:d.i:d.i], true
}

// skipValue takes one JSON value (after any whitespace), checking its
// syntax as encoding/json does.
func (d *decoder) skipValue(depth int) bool {
	d.ws()
	if d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		if depth >= maxRawDepth {
			return false
		}
		return d.object(func([]byte) bool { return d.skipValue(depth + 1) })
	case c == '[':
		if depth >= maxRawDepth {
			return false
		}
		return d.array(func() bool { return d.skipValue(depth + 1) })
	case c == '"':
		return d.skipString()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.skipNumber()
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	}
	return false
}

// literal takes lit.
func (d *decoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// skipString takes a string, checking its escapes; its other bytes are
// taken as they are (encoding/json accepts any byte from 0x20 up in a
// string, and a raw value keeps them).
func (d *decoder) skipString() bool {
	d.i++ // the opening quote
	for d.i < len(d.b) {
		if strClass[d.b[d.i]] != classStop {
			d.i++
			continue
		}
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return true
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return false
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if d.i+6 > len(d.b) {
					return false
				}
				if _, ok := jsonhex.Hex4(d.b[d.i+2 : d.i+6]); !ok {
					return false
				}
				d.i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			d.i++
		}
	}
	return false
}

// skipNumber takes a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) skipNumber() bool {
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
