// Package jsonplan decodes JSON objects into plain Go structs without
// encoding/json's scanner, with exactly json.Unmarshal's result whenever
// it decodes at all.
//
// For a struct type made only of strings, bools, integers, floats, nested
// structs of the same kind, slices of and pointers to these, For builds a Plan once: the fields as
// encoding/json names them, their offsets and kinds. Plan.Decode walks a
// payload once and writes the fields in place. It only succeeds on inputs
// it fully understands; on anything else (a syntax error, a type error, a
// number it would have to round or reject, an escaped or non-ASCII key,
// a string with invalid UTF-8, deep unknown values) it reports false, and
// the caller zeroes the target and decodes with encoding/json, which then
// gives its own result and error. Any type outside that shape gets no plan
// (For returns nil), and any plan-less type is encoding/json's alone.
//
// The rules copied are encoding/json v1's. Built with GOEXPERIMENT=jsonv2,
// encoding/json runs on encoding/json/v2, whose rules differ (tag names v1
// ignores as invalid name the field there, for one): then no type gets a
// plan.
//
// The encoding side, EncoderFor and Marshal (encode.go), writes exactly
// json.Marshal's bytes for the same shapes.
//
// What the plan copies from encoding/json's rules: a field's name is its
// json tag's name when the tag's name is valid, else the Go name; a field
// tagged "-" and unexported fields are not decoded (a key naming one is an
// unknown key, whose value is skipped); a key matches the field of the
// same name, else the field whose name equals it under ASCII case folding;
// a null leaves a field as it is; a repeated key decodes again over what
// the first one left (a nested struct is merged); integers take only
// integer literals in range; floats are strconv.ParseFloat's at the
// field's bit size; strings are unescaped and copied out of the payload,
// never aliasing it; a null sets a slice or a pointer to nil; an array
// makes a new slice (an empty one is not nil), and a pointer is allocated
// when nil, else decoded through. A slice that is decoded a second time
// (a repeated key) is left to encoding/json, which reuses its elements.
package jsonplan

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// kind is how a value is decoded and stored.
type kind uint8

const (
	kindString kind = iota
	kindBool
	kindInt   // signed, size bytes
	kindUint  // unsigned, size bytes
	kindFloat // size 4 or 8
	kindStruct
	kindSlice
	kindPointer
)

// codec says how to decode one type's values.
type codec struct {
	kind kind
	size uint8        // bytes, for the number kinds
	sub  *Plan        // kindStruct: the struct's plan
	elem *codec       // kindSlice, kindPointer: the element's, the pointee's
	typ  reflect.Type // kindSlice: the slice type; kindPointer: the pointee type
	step uintptr      // kindSlice: the element size
}

// field is one decoded field of a struct: its name and where it is.
type field struct {
	name string  // the JSON name, as encoding/json derives it (ASCII)
	off  uintptr // offset in the struct that holds it
	codec
}

// Plan decodes JSON into values of one struct type. It is built once per
// type by For and is immutable afterwards: any number of goroutines may use
// one Plan at the same time.
type Plan struct {
	typ    reflect.Type
	fields []field
}

// Type reports the struct type the plan decodes into.
func (p *Plan) Type() reflect.Type { return p.typ }

// plans caches For's answer per type: a *Plan, or a nil *Plan for a type
// the fast path refuses.
var plans sync.Map // reflect.Type → *Plan

// For returns the plan for t, or nil when t is outside the shapes a plan
// decodes (then every payload for t is encoding/json's). The answer is
// built on first use and cached; For is safe for concurrent use.
//
// Accepted: a struct type whose exported, non-"-" fields are of kind
// string, bool, int*, uint* (including uintptr), float32/64, a struct
// accepted by the same rules, a slice of any of these (not of a uint8
// kind, which encoding/json reads as base64), or a pointer to any of these.
// Refused: a type (T or *T, for the struct and for every type it holds)
// that implements json.Unmarshaler or encoding.TextUnmarshaler,
// json.Number, any other kind (maps, arrays, interfaces, pointers to
// pointers, ...), a type that contains itself, embedded fields, the
// ",string" option, a non-ASCII field name, and two fields whose names are
// equal under case folding. Every type is refused when encoding/json is
// built on encoding/json/v2 (GOEXPERIMENT=jsonv2).
func For(t reflect.Type) *Plan {
	if jsonV2 {
		return nil
	}
	if p, ok := plans.Load(t); ok {
		return p.(*Plan)
	}
	p := build(t, map[reflect.Type]bool{})
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*Plan)
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType      = reflect.TypeFor[json.Number]()
)

// decodesItself reports whether encoding/json would hand t's values (or
// their addresses) to a method of their own.
func decodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || pt.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler)
}

// build makes struct type t's plan, or returns nil when t is refused.
// visiting holds the struct types being built, to refuse one that
// contains itself.
func build(t reflect.Type, visiting map[reflect.Type]bool) *Plan {
	if t.Kind() != reflect.Struct || decodesItself(t) || visiting[t] {
		return nil
	}
	visiting[t] = true
	defer delete(visiting, t)
	p := &Plan{typ: t}
	folded := make(map[string]bool)
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil // promoted fields and their dominance rules: not here
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		for opt := range strings.SplitSeq(opts, ",") {
			if opt == "string" {
				return nil
			}
		}
		if !validTagName(name) {
			name = ""
		}
		if name == "" {
			name = sf.Name
		}
		if !isASCII(name) {
			return nil
		}
		key := strings.ToUpper(name) // ASCII: encoding/json's folding
		if folded[key] {
			return nil
		}
		folded[key] = true
		c := codecFor(sf.Type, visiting)
		if c == nil {
			return nil
		}
		p.fields = append(p.fields, field{name: name, off: sf.Offset, codec: *c})
	}
	return p
}

// scalarKind is the kind of Go kind k when it is a string, bool, integer
// or float kind, and whether it is.
func scalarKind(k reflect.Kind) (kind, bool) {
	switch k {
	case reflect.String:
		return kindString, true
	case reflect.Bool:
		return kindBool, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kindInt, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return kindUint, true
	case reflect.Float32, reflect.Float64:
		return kindFloat, true
	}
	return 0, false
}

// codecFor returns how to decode t's values, or nil when t is refused.
func codecFor(t reflect.Type, visiting map[reflect.Type]bool) *codec {
	if decodesItself(t) || t == numberType {
		return nil
	}
	c := &codec{size: uint8(t.Size())}
	if k, ok := scalarKind(t.Kind()); ok {
		c.kind = k
		return c
	}
	switch t.Kind() {
	case reflect.Struct:
		c.kind = kindStruct
		if c.sub = build(t, visiting); c.sub == nil {
			return nil
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // base64 in encoding/json
		}
		c.kind, c.typ, c.step = kindSlice, t, t.Elem().Size()
		if c.elem = codecFor(t.Elem(), visiting); c.elem == nil {
			return nil
		}
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Pointer {
			return nil
		}
		c.kind, c.typ = kindPointer, t.Elem()
		if c.elem = codecFor(t.Elem(), visiting); c.elem == nil {
			return nil
		}
	default:
		return nil
	}
	return c
}

// validTagName is encoding/json's rule for a tag name it uses: not empty,
// and only letters, digits and the punctuation it allows (no backslash, no
// quote). Any other tag name is ignored in favour of the Go name.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", r) {
			continue
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lookup returns the field key names: its exact name, or its name under
// ASCII case folding (no two fields of a plan fold alike, so at most one
// field matches either way, and an exact match is also that field). key is
// ASCII.
func (p *Plan) lookup(key []byte) *field {
	for i := range p.fields {
		f := &p.fields[i]
		if len(f.name) == len(key) && equalFoldASCII(f.name, key) {
			return f
		}
	}
	return nil
}

func equalFoldASCII(name string, key []byte) bool {
	for i := range len(key) {
		a, b := name[i], key[i]
		if a == b {
			continue
		}
		if a|0x20 != b|0x20 || a|0x20 < 'a' || a|0x20 > 'z' {
			return false
		}
	}
	return true
}
