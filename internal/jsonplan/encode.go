package jsonplan

import (
	"encoding"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"
)

// The encoding side: an Encoder writes exactly json.Marshal's bytes for the
// types whose decoding plan exists (For), minus those json.Marshal hands to
// a method of theirs and those with an omitzero field.
//
// What it copies from encoding/json v1's Marshal (escapeHTML on, as
// Marshal always has it):
//   - a struct is an object of its encoded fields in field order, each
//     named as the plan names it; "{}" when none is written;
//   - omitempty leaves out false, 0 (and -0), "", a nil pointer and an
//     empty or nil slice; never a struct;
//   - a nil slice or pointer is null, an empty slice [];
//   - strings are quoted with \" \\ \b \f \n \r \t, \u00XX for the other
//     control bytes and for < > &, \ufffd for each byte of invalid UTF-8,
//     and \u2028 \u2029 for those two runes; the rest is copied;
//   - integers in decimal; floats as strconv's shortest 'f' format at the
//     value's bit size, or 'e' below 1e-6 or from 1e21 on (magnitude, in
//     the value's own precision), a two-digit negative exponent shortened
//     to one (e-07 becomes e-7); NaN and ±Inf make Marshal fail.

// maxEncodeDepth bounds the nesting (structs, slices, pointers) of a type
// that gets an encoder. Past 1000 pointers and slices deep, json.Marshal
// looks for cycles by address, and would report one where an address
// recurs (a pointer to a struct inside a value that a pointer to the
// struct's first field holds, say); an encoder reports none, so no type
// nears that depth.
const maxEncodeDepth = 100

// Encoder encodes values of one type exactly as json.Marshal does, with
// no reflection on the values: it is built once per type by EncoderFor and
// is immutable afterwards (but for Marshal's size hint, updated
// atomically), so any number of goroutines may use one at the same time.
type Encoder struct {
	typ  reflect.Type
	root *encNode
	// direct reports whether an interface holding a value of typ holds
	// it in its data word (a pointer-shaped type) rather than a pointer
	// to it; boxed reports that Marshal may read typ's values out of
	// interfaces: directIface's rule and the runtime agree on typ.
	direct, boxed bool
	// typeWord is the type word of an interface holding a typ: Marshal's
	// cache key.
	typeWord unsafe.Pointer
	// hint is the capacity Marshal allocates: about the largest value of
	// typ encoded lately, and an eighth more.
	hint atomic.Int32
}

// encNode says how to encode one type's values.
type encNode struct {
	kind   kind
	size   uint8      // bytes, for the number kinds
	fields []encField // kindStruct: the encoded fields, in order
	elem   *encNode   // kindSlice, kindPointer: the element's, the pointee's
	step   uintptr    // kindSlice: the element size
}

// encField is one encoded field of a struct.
type encField struct {
	key       string // `,"name":` with name escaped as Marshal escapes it
	off       uintptr
	omitEmpty bool
	*encNode
}

// Type reports the type the encoder encodes.
func (e *Encoder) Type() reflect.Type { return e.typ }

// encoders caches EncoderFor's answer per type: an *Encoder, or a nil
// *Encoder for a refused type.
var encoders sync.Map // reflect.Type → *Encoder

// EncoderFor returns t's encoder, or nil when t is outside the shapes it
// encodes (then t's values are json.Marshal's alone). The answer is built
// on first use and cached; EncoderFor is safe for concurrent use.
//
// Accepted: a struct type that has a decoding plan (see For: the plain
// shapes made of strings, bools, integers, floats, nested structs, slices
// of and pointers to these), and a pointer to such a struct type. Refused,
// besides what For refuses: a type (T or *T, for the top type and for
// every type it holds) that implements json.Marshaler or
// encoding.TextMarshaler, a field with the omitzero option, and a type
// nested more than 100 levels deep. Every type is refused when
// encoding/json is built on encoding/json/v2 (GOEXPERIMENT=jsonv2).
func EncoderFor(t reflect.Type) *Encoder {
	if jsonV2 || t == nil {
		return nil
	}
	if e, ok := encoders.Load(t); ok {
		return e.(*Encoder)
	}
	e := buildEncoder(t)
	actual, _ := encoders.LoadOrStore(t, e)
	return actual.(*Encoder)
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// encodesItself reports whether json.Marshal could hand t's values (or
// their addresses) to a method of their own.
func encodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(jsonMarshaler) || pt.Implements(jsonMarshaler) ||
		t.Implements(textMarshaler) || pt.Implements(textMarshaler)
}

// buildEncoder makes t's encoder, or returns nil when t is refused.
func buildEncoder(t reflect.Type) *Encoder {
	st := t
	if t.Kind() == reflect.Pointer {
		st = t.Elem()
	}
	if st.Kind() != reflect.Struct || For(st) == nil {
		return nil
	}
	root := encNodeFor(t, 0)
	if root == nil {
		return nil
	}
	e := &Encoder{typ: t, root: root, direct: directIface(t)}
	zero := reflect.Zero(t).Interface()
	box := (*eface)(unsafe.Pointer(&zero))
	// A direct type's zero value boxes to a nil data word (the nil
	// pointer itself), an indirect one's never (it points to the value):
	// this checks directIface and the interface layout both.
	e.boxed = e.direct == (box.data == nil)
	e.typeWord = box.typ
	e.hint.Store(64)
	return e
}

// encNodeFor returns how to encode t's values, or nil when t is refused.
// t is a type For's plan accepted (as a struct, or held by one).
func encNodeFor(t reflect.Type, depth int) *encNode {
	if depth > maxEncodeDepth || encodesItself(t) {
		return nil
	}
	n := &encNode{size: uint8(t.Size())}
	if k, ok := scalarKind(t.Kind()); ok {
		n.kind = k
		return n
	}
	switch t.Kind() {
	case reflect.Struct:
		n.kind = kindStruct
		if n.fields = encFieldsFor(t, depth); n.fields == nil {
			return nil
		}
	case reflect.Slice:
		n.kind, n.step = kindSlice, t.Elem().Size()
		if n.elem = encNodeFor(t.Elem(), depth+1); n.elem == nil {
			return nil
		}
	case reflect.Pointer:
		n.kind = kindPointer
		if n.elem = encNodeFor(t.Elem(), depth+1); n.elem == nil {
			return nil
		}
	default:
		return nil
	}
	return n
}

// encFieldsFor returns the encoded fields of struct type t (not nil), or
// nil when t or one of them is refused.
// The fields are the plan's, whose names encoding/json's rules gave; they
// are t's exported fields not tagged "-", in order (the plan refuses
// embedded ones).
func encFieldsFor(t reflect.Type, depth int) []encField {
	p := For(t)
	if p == nil {
		return nil
	}
	fields := make([]encField, 0, len(p.fields))
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if !sf.IsExported() || tag == "-" {
			continue
		}
		if len(fields) == len(p.fields) || p.fields[len(fields)].off != sf.Offset {
			return nil // not the plan's fields: never so, but then refuse
		}
		pf := &p.fields[len(fields)]
		omitEmpty := false
		_, opts, _ := strings.Cut(tag, ",")
		for opt := range strings.SplitSeq(opts, ",") {
			switch opt {
			case "omitempty":
				omitEmpty = true
			case "omitzero":
				return nil // reflect.Value.IsZero and IsZero methods: not here
			}
		}
		n := encNodeFor(sf.Type, depth+1)
		if n == nil {
			return nil
		}
		// The plan's names are ASCII without control bytes, quotes or
		// backslashes (encoding/json's valid tag names and Go names):
		// quoting one escapes exactly what Marshal's HTML escaping of
		// names does, < > and &.
		key := appendQuoted([]byte{','}, pf.name)
		fields = append(fields, encField{key: string(append(key, ':')), off: sf.Offset, omitEmpty: omitEmpty, encNode: n})
	}
	if len(fields) != len(p.fields) {
		return nil
	}
	return fields
}

// directIface reports whether an interface holds t's values in its data
// word rather than a pointer to them: so the runtime does for a
// pointer-shaped type, one word that is a pointer (Go 1.26's rule, the
// compiler's and reflect.StructOf's: size one word, and that word holds
// pointers; for the kinds an encoder takes, a pointer, or a struct of one
// word holding one, around zero-size fields). buildEncoder checks it
// against the runtime.
func directIface(t reflect.Type) bool {
	return t.Size() == unsafe.Sizeof(uintptr(0)) && holdsPointer(t)
}

// holdsPointer reports whether t's values hold a pointer, for the kinds an
// encoder takes.
func holdsPointer(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice:
		return true
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsPointer(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// eface is an interface's layout: its type word and its data word.
type eface struct {
	typ, data unsafe.Pointer
}

// Append appends the JSON of the value at p, a pointer to a value of the
// encoder's type, to dst: json.Marshal's bytes for that value. ok is false
// when json.Marshal would fail on the value (a NaN or infinite float):
// then out is dst (bytes past its length may have been written), and the
// caller calls json.Marshal for its error. Append only reads the value,
// which must not change meanwhile; it is safe for concurrent use.
func (e *Encoder) Append(dst []byte, p unsafe.Pointer) (out []byte, ok bool) {
	out, ok = e.root.append(dst, p)
	if !ok {
		return dst, false
	}
	return out, true
}

// Marshal encodes v like json.Marshal when v's dynamic type has an
// encoder (EncoderFor): b is then json.Marshal(v)'s bytes, in a new slice
// (its capacity may exceed its length). ok false means v is not handled
// here: its type has no encoder, v is nil, or json.Marshal would fail on
// it; the caller then calls json.Marshal. The buffer is sized from what
// the type's values took lately, so that one allocation is the common
// case (for values up to 8 KiB). Marshal is safe for concurrent use.
func Marshal(v any) (b []byte, ok bool) {
	box := (*eface)(unsafe.Pointer(&v))
	if box.typ == nil {
		return nil, false
	}
	slot := &marshalCache[(uint64(uintptr(box.typ))*0x9e3779b97f4a7c15)>>(64-marshalCacheBits)]
	e := slot.Load()
	if e == nil || e.typeWord != box.typ {
		if e = EncoderFor(reflect.TypeOf(v)); e == nil || !e.boxed {
			return nil, false
		}
		slot.Store(e)
	}
	word := box.data
	p := word
	if e.direct {
		p = unsafe.Pointer(&word) // the value is the data word itself
	}
	h := int(e.hint.Load())
	b, ok = e.root.append(make([]byte, 0, h), p)
	if !ok {
		return nil, false
	}
	// The hint follows the largest size lately, with an eighth more for
	// values a little larger: up at once, down by an eighth of the
	// difference a call, never above maxHint.
	if want := min(len(b), maxHint) * 9 / 8; want > h {
		e.hint.Store(int32(want))
	} else if want < h {
		e.hint.Store(int32(h - (h-want+7)/8))
	}
	return b, true
}

// maxHint bounds the size Marshal allocates up front: a larger value grows
// its buffer as append does, and a type's rare huge value does not make the
// next calls allocate as much.
const maxHint = 8 << 10

// marshalCache maps the type words Marshal meets to their encoders, in
// front of EncoderFor's sync.Map: one slot per hash of the type word, the
// latest encoder there (two types of one slot take turns).
var marshalCache [1 << marshalCacheBits]atomic.Pointer[Encoder]

const marshalCacheBits = 8

// append appends the JSON of the value at p.
func (n *encNode) append(dst []byte, p unsafe.Pointer) ([]byte, bool) {
	switch n.kind {
	case kindString:
		return appendQuoted(dst, *(*string)(p)), true
	case kindBool:
		if *(*bool)(p) {
			return append(dst, "true"...), true
		}
		return append(dst, "false"...), true
	case kindInt:
		return strconv.AppendInt(dst, loadInt(n.size, p), 10), true
	case kindUint:
		return strconv.AppendUint(dst, loadUint(n.size, p), 10), true
	case kindFloat:
		return appendFloat(dst, n.size, p)
	case kindStruct:
		return appendObject(dst, n.fields, p)
	case kindSlice:
		h := (*sliceHeader)(p)
		if h.data == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i := range h.len {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = n.elem.append(dst, unsafe.Add(h.data, uintptr(i)*n.step)); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case kindPointer:
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return append(dst, "null"...), true
		}
		return n.elem.append(dst, q)
	}
	panic("jsonplan: unknown kind")
}

// appendObject appends the object of the struct at p, of those fields.
func appendObject(dst []byte, fields []encField, p unsafe.Pointer) ([]byte, bool) {
	start := len(dst)
	for i := range fields {
		f := &fields[i]
		fp := unsafe.Add(p, f.off)
		if f.omitEmpty && f.empty(fp) {
			continue
		}
		key := f.key
		if len(dst) == start {
			key = key[1:] // no ',' before the first
			dst = append(dst, '{')
		}
		dst = append(dst, key...)
		var ok bool
		if dst, ok = f.encNode.append(dst, fp); !ok {
			return dst, false
		}
	}
	if len(dst) == start {
		return append(dst, "{}"...), true
	}
	return append(dst, '}'), true
}

// empty reports whether omitempty leaves out the value at p: false, zero
// numbers (-0 included, not NaN), "", a nil pointer, a nil or empty slice.
// A struct is never empty.
func (n *encNode) empty(p unsafe.Pointer) bool {
	switch n.kind {
	case kindString:
		return len(*(*string)(p)) == 0
	case kindBool:
		return !*(*bool)(p)
	case kindInt:
		return loadInt(n.size, p) == 0
	case kindUint:
		return loadUint(n.size, p) == 0
	case kindFloat:
		if n.size == 4 {
			return *(*float32)(p) == 0
		}
		return *(*float64)(p) == 0
	case kindSlice:
		return (*sliceHeader)(p).len == 0
	case kindPointer:
		return *(*unsafe.Pointer)(p) == nil
	}
	return false
}

func loadInt(size uint8, p unsafe.Pointer) int64 {
	switch size {
	case 1:
		return int64(*(*int8)(p))
	case 2:
		return int64(*(*int16)(p))
	case 4:
		return int64(*(*int32)(p))
	}
	return *(*int64)(p)
}

func loadUint(size uint8, p unsafe.Pointer) uint64 {
	switch size {
	case 1:
		return uint64(*(*uint8)(p))
	case 2:
		return uint64(*(*uint16)(p))
	case 4:
		return uint64(*(*uint32)(p))
	}
	return *(*uint64)(p)
}

// appendFloat appends the float of size bytes at p as Marshal writes it,
// or reports false for NaN and ±Inf, which Marshal rejects.
func appendFloat(dst []byte, size uint8, p unsafe.Pointer) ([]byte, bool) {
	var f float64
	var bits int
	var useExp bool
	if size == 4 {
		f32 := *(*float32)(p)
		f, bits = float64(f32), 32
		// The cutoffs compared in float32, as Marshal does: 1e-6 and
		// 1e21 rounded to float32 are not float64's.
		abs := float32(math.Abs(float64(f32)))
		useExp = abs != 0 && (abs < 1e-6 || abs >= 1e21)
	} else {
		f, bits = *(*float64)(p), 64
		abs := math.Abs(f)
		useExp = abs != 0 && (abs < 1e-6 || abs >= 1e21)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	if !useExp {
		return strconv.AppendFloat(dst, f, 'f', -1, bits), true
	}
	dst = strconv.AppendFloat(dst, f, 'e', -1, bits)
	// e-07 → e-7: a negative exponent of one digit loses its 0.
	if n := len(dst); dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1]
		dst = dst[:n-1]
	}
	return dst, true
}

// plainASCII marks the bytes a quoted string holds as they are: printable
// ASCII but for the quote, the backslash and < > &.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = !strings.ContainsRune(`"\<>&`, rune(b))
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendQuoted appends s as a JSON string the way Marshal writes it.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	// Most strings need no escaping: copy the plain run in one go.
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && plainASCII[s[i]] {
		i++
	}
	dst = append(dst, s[:i]...)
	if i == len(s) {
		return append(dst, '"')
	}
	return appendEscaped(dst, s, i)
}

// appendEscaped appends s[from:] escaped, and the closing quote.
func appendEscaped(dst []byte, s string, from int) []byte {
	done := from // s[:done] is written
	for i := from; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[done:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, `\b`...)
			case '\f':
				dst = append(dst, `\f`...)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default: // other control bytes, < > &
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[done:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}
