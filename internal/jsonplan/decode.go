package jsonplan

import (
	"reflect"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/kafkarpc/kafkarpc/internal/jsonhex"
)

// maxSkipDepth bounds the nesting of an unknown key's value the decoder
// validates and skips itself; deeper values are left to encoding/json.
const maxSkipDepth = 32

// Decode decodes data, one JSON value with optional whitespace around it,
// into the struct at dst, which must point to a zero value of p's type. It
// reports true only when the result is exactly json.Unmarshal's for data
// and json.Unmarshal would return no error. On false, dst may be partly
// written: the caller zeroes it and decodes with encoding/json.
//
// Strings written to dst are new copies: nothing in dst refers to data.
// Decode is safe for concurrent use with distinct dst.
func (p *Plan) Decode(data []byte, dst unsafe.Pointer) bool {
	d := decoder{data: data}
	d.space()
	if d.i >= len(d.data) {
		return false
	}
	switch d.data[d.i] {
	case 'n':
		if !d.literal("null") {
			return false
		}
	case '{':
		if !d.object(p, dst) {
			return false
		}
	default:
		return false
	}
	d.space()
	return d.i == len(d.data)
}

// decoder is a position in one payload.
type decoder struct {
	data []byte
	i    int
}

// space skips JSON whitespace.
func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// literal consumes lit (true, false, null) at the position.
func (d *decoder) literal(lit string) bool {
	if len(d.data)-d.i < len(lit) || string(d.data[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// object decodes the object at the position ('{') into the struct at dst.
func (d *decoder) object(p *Plan, dst unsafe.Pointer) bool {
	d.i++ // '{'
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return true
	}
	for {
		key, ok := d.key()
		if !ok {
			return false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return false
		}
		d.i++
		d.space()
		if f := p.lookup(key); f != nil {
			ok = d.value(&f.codec, unsafe.Add(dst, f.off))
		} else {
			ok = d.skip(0)
		}
		if !ok {
			return false
		}
		if end, ok := d.next('}'); !ok || end {
			return ok
		}
	}
}

// next consumes what follows a member of an object or an element of an
// array: a ',' (and the space after it) or the closer that ends the
// object or array (end). Anything else: not ok.
func (d *decoder) next(closer byte) (end, ok bool) {
	d.space()
	if d.i >= len(d.data) {
		return false, false
	}
	switch d.data[d.i] {
	case ',':
		d.i++
		d.space()
		return false, true
	case closer:
		d.i++
		return true, true
	}
	return false, false
}

// key returns the object key at the position, which must be a string of
// printable ASCII without escapes (anything else: false, as its match
// would need encoding/json's unescaping and Unicode folding).
func (d *decoder) key() ([]byte, bool) {
	if d.i >= len(d.data) || d.data[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.data); j++ {
		c := d.data[j]
		if c == '"' {
			d.i = j + 1
			return d.data[start:j], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return nil, false
		}
	}
	return nil, false
}

// value decodes the value at the position into the value of codec c at
// ptr.
func (d *decoder) value(c *codec, ptr unsafe.Pointer) bool {
	if d.i >= len(d.data) {
		return false
	}
	if d.data[d.i] == 'n' {
		if !d.literal("null") {
			return false
		}
		switch c.kind {
		case kindSlice:
			*(*sliceHeader)(ptr) = sliceHeader{}
		case kindPointer:
			*(*unsafe.Pointer)(ptr) = nil
		}
		return true // the other kinds stay as they are
	}
	switch c.kind {
	case kindString:
		if d.data[d.i] != '"' {
			return false
		}
		s, ok := d.str()
		if ok {
			*(*string)(ptr) = s
		}
		return ok
	case kindBool:
		switch {
		case d.literal("true"):
			*(*bool)(ptr) = true
		case d.literal("false"):
			*(*bool)(ptr) = false
		default:
			return false
		}
		return true
	case kindInt:
		return d.signed(c.size, ptr)
	case kindUint:
		return d.unsigned(c.size, ptr)
	case kindFloat:
		return d.float(c.size, ptr)
	case kindStruct:
		if d.data[d.i] != '{' {
			return false
		}
		return d.object(c.sub, ptr)
	case kindSlice:
		if d.data[d.i] != '[' {
			return false
		}
		return d.array(c, (*sliceHeader)(ptr))
	case kindPointer:
		p := *(*unsafe.Pointer)(ptr)
		if p == nil {
			p = reflect.New(c.typ).UnsafePointer()
			*(*unsafe.Pointer)(ptr) = p
		}
		return d.value(c.elem, p)
	}
	return false
}

// sliceHeader is a slice's layout.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// noElems is what an empty decoded slice points to: not nil, as
// encoding/json makes it.
var noElems struct{}

// array decodes the array at the position ('[') into the slice of codec c
// at h, growing it as encoding/json does (one element at a time with
// reflect.Value.Grow). A slice already set (its key repeated) is refused:
// encoding/json decodes into its elements.
func (d *decoder) array(c *codec, h *sliceHeader) bool {
	if h.data != nil {
		return false
	}
	d.i++ // '['
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		h.data = unsafe.Pointer(&noElems)
		return true
	}
	for n := 0; ; n++ {
		if n == h.cap {
			reflect.NewAt(c.typ, unsafe.Pointer(h)).Elem().Grow(1)
		}
		h.len = n + 1
		if !d.value(c.elem, unsafe.Add(h.data, uintptr(n)*c.step)) {
			return false
		}
		if end, ok := d.next(']'); !ok || end {
			return ok
		}
	}
}

// integer consumes an integer literal, -?(0|[1-9][0-9]*), and returns its
// sign and magnitude. A fraction or an exponent after it, a magnitude past
// 1<<64-1 or no digit at all: false.
func (d *decoder) integer() (neg bool, mag uint64, ok bool) {
	if d.i < len(d.data) && d.data[d.i] == '-' {
		neg = true
		d.i++
	}
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if c < '0' || c > '9' {
			break
		}
		if d.i > start && d.data[start] == '0' {
			return false, 0, false // a leading zero
		}
		digit := uint64(c - '0')
		if mag > (1<<64-1-digit)/10 {
			return false, 0, false
		}
		mag = mag*10 + digit
		d.i++
	}
	if d.i == start {
		return false, 0, false
	}
	if d.i < len(d.data) {
		switch d.data[d.i] {
		case '.', 'e', 'E':
			return false, 0, false
		}
	}
	return neg, mag, true
}

// signed decodes an integer literal into a size-byte signed integer,
// refusing what does not fit (encoding/json's type error).
func (d *decoder) signed(size uint8, ptr unsafe.Pointer) bool {
	neg, mag, ok := d.integer()
	if !ok {
		return false
	}
	limit := uint64(1) << (size*8 - 1) // -limit .. limit-1
	if (!neg && mag >= limit) || (neg && mag > limit) {
		return false
	}
	v := int64(mag)
	if neg {
		v = -v
	}
	switch size {
	case 1:
		*(*int8)(ptr) = int8(v)
	case 2:
		*(*int16)(ptr) = int16(v)
	case 4:
		*(*int32)(ptr) = int32(v)
	case 8:
		*(*int64)(ptr) = v
	default:
		return false
	}
	return true
}

// unsigned decodes an integer literal into a size-byte unsigned integer,
// refusing a sign (strconv.ParseUint takes none, not even "-0") and what
// does not fit.
func (d *decoder) unsigned(size uint8, ptr unsafe.Pointer) bool {
	neg, mag, ok := d.integer()
	if !ok || neg {
		return false
	}
	if size < 8 && mag >= uint64(1)<<(size*8) {
		return false
	}
	switch size {
	case 1:
		*(*uint8)(ptr) = uint8(mag)
	case 2:
		*(*uint16)(ptr) = uint16(mag)
	case 4:
		*(*uint32)(ptr) = uint32(mag)
	case 8:
		*(*uint64)(ptr) = mag
	default:
		return false
	}
	return true
}

// number consumes a literal of JSON's number grammar,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns it.
func (d *decoder) number() ([]byte, bool) {
	start := d.i
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i >= len(d.data):
		return nil, false
	case d.data[d.i] == '0':
		d.i++
	case d.data[d.i] >= '1' && d.data[d.i] <= '9':
		d.digits()
	default:
		return nil, false
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if !d.digits() {
			return nil, false
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return nil, false
		}
	}
	return d.data[start:d.i], true
}

// digits consumes [0-9]* and reports whether there was at least one.
func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// float decodes a number into a size-byte float with strconv.ParseFloat,
// as encoding/json does; a number out of the float's range is refused.
func (d *decoder) float(size uint8, ptr unsafe.Pointer) bool {
	lit, ok := d.number()
	if !ok {
		return false
	}
	// The conversion does not escape: no allocation for a short literal.
	v, err := strconv.ParseFloat(string(lit), int(size)*8)
	if err != nil {
		return false
	}
	switch size {
	case 4:
		*(*float32)(ptr) = float32(v)
	case 8:
		*(*float64)(ptr) = v
	default:
		return false
	}
	return true
}

// str decodes the string at the position ('"') into a new string. Invalid
// UTF-8 (which encoding/json replaces), a lone or reversed surrogate escape
// (likewise), a control character or a bad escape: false.
func (d *decoder) str() (string, bool) {
	start := d.i + 1
	for j := start; j < len(d.data); {
		c := d.data[j]
		switch {
		case c == '"':
			d.i = j + 1
			return string(d.data[start:j]), true
		case c == '\\':
			return d.strEscaped(start, j)
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRune(d.data[j:])
			if r == utf8.RuneError && n == 1 {
				return "", false
			}
			j += n
		}
	}
	return "", false
}

// strEscaped finishes str for a string that starts at start and has its
// first escape at j.
func (d *decoder) strEscaped(start, j int) (string, bool) {
	var scratch [128]byte
	buf := append(scratch[:0], d.data[start:j]...)
	for j < len(d.data) {
		c := d.data[j]
		switch {
		case c == '"':
			d.i = j + 1
			return string(buf), true
		case c == '\\':
			if j+1 >= len(d.data) {
				return "", false
			}
			j += 2
			switch d.data[j-1] {
			case '"', '\\', '/':
				buf = append(buf, d.data[j-1])
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := jsonhex.Hex4(d.data[j:])
				if !ok {
					return "", false
				}
				j += 4
				if r >= 0xDC00 && r < 0xE000 {
					return "", false // a low surrogate first
				}
				if r >= 0xD800 && r < 0xDC00 {
					// Only a high surrogate escape followed at once by a
					// low surrogate escape makes one rune.
					if len(d.data)-j < 6 || d.data[j] != '\\' || d.data[j+1] != 'u' {
						return "", false
					}
					lo, ok := jsonhex.Hex4(d.data[j+2:])
					if !ok || lo < 0xDC00 || lo >= 0xE000 {
						return "", false
					}
					j += 6
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", false
			}
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			j++
		default:
			r, n := utf8.DecodeRune(d.data[j:])
			if r == utf8.RuneError && n == 1 {
				return "", false
			}
			buf = append(buf, d.data[j:j+n]...)
			j += n
		}
	}
	return "", false
}

// skip validates and consumes the value at the position without decoding
// it, as encoding/json's scanner would accept it; nesting beyond
// maxSkipDepth: false.
func (d *decoder) skip(depth int) bool {
	if d.i >= len(d.data) || depth > maxSkipDepth {
		return false
	}
	switch c := d.data[d.i]; {
	case c == '"':
		return d.skipString()
	case c == '{':
		return d.skipObject(depth)
	case c == '[':
		return d.skipArray(depth)
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := d.number()
		return ok
	}
	return false
}

// skipString consumes a string as the scanner accepts it: no control
// characters, only JSON's escapes; other bytes (even invalid UTF-8) pass.
func (d *decoder) skipString() bool {
	for j := d.i + 1; j < len(d.data); j++ {
		switch c := d.data[j]; {
		case c == '"':
			d.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if j+1 >= len(d.data) {
				return false
			}
			j++
			switch d.data[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, ok := jsonhex.Hex4(d.data[j+1:]); !ok {
					return false
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

func (d *decoder) skipObject(depth int) bool {
	d.i++ // '{'
	d.space()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return true
	}
	for {
		if d.i >= len(d.data) || d.data[d.i] != '"' || !d.skipString() {
			return false
		}
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return false
		}
		d.i++
		d.space()
		if !d.skip(depth + 1) {
			return false
		}
		if end, ok := d.next('}'); !ok || end {
			return ok
		}
	}
}

func (d *decoder) skipArray(depth int) bool {
	d.i++ // '['
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return true
	}
	for {
		if !d.skip(depth + 1) {
			return false
		}
		if end, ok := d.next(']'); !ok || end {
			return ok
		}
	}
}
