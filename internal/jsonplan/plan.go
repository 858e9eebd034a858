// Package jsonplan decodes JSON objects into plain Go structs without
// encoding/json's scanner, with exactly json.Unmarshal's result whenever
// it decodes at all.
//
// For a struct type made only of strings, bools, integers, floats and
// nested structs of the same kind, For builds a Plan once: the fields as
// encoding/json names them, their offsets and kinds. Plan.Decode walks a
// payload once and writes the fields in place. It only succeeds on inputs
// it fully understands; on anything else (a syntax error, a type error, a
// number it would have to round or reject, an escaped or non-ASCII key,
// a string with invalid UTF-8, deep unknown values) it reports false, and
// the caller zeroes the target and decodes with encoding/json, which then
// gives its own result and error. Any type outside that shape gets no plan
// (For returns nil), and any plan-less type is encoding/json's alone.
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
// never aliasing it.
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

// kind is how a field's value is decoded and stored.
type kind uint8

const (
	kindString kind = iota
	kindBool
	kindInt   // signed, size bytes
	kindUint  // unsigned, size bytes
	kindFloat // size 4 or 8
	kindStruct
)

// field is one decoded field of a struct: where it is and how to fill it.
type field struct {
	name string  // the JSON name, as encoding/json derives it (ASCII)
	off  uintptr // offset in the struct that holds it
	kind kind
	size uint8 // bytes, for the number kinds
	sub  *Plan // kindStruct: the nested struct's plan
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
// string, bool, int*, uint* (including uintptr), float32/64, or a struct
// accepted by the same rules. Refused: a type (T or *T, for the struct and
// for every field) that implements json.Unmarshaler or
// encoding.TextUnmarshaler, json.Number, any other kind (pointers, slices,
// maps, arrays, interfaces, ...), embedded fields, the ",string" option, a
// non-ASCII field name, and two fields whose names are equal under case
// folding.
func For(t reflect.Type) *Plan {
	if p, ok := plans.Load(t); ok {
		return p.(*Plan)
	}
	p := build(t)
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

// build makes t's plan, or returns nil when t is refused.
func build(t reflect.Type) *Plan {
	if t.Kind() != reflect.Struct || decodesItself(t) {
		return nil
	}
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
		f := field{name: name, off: sf.Offset, size: uint8(sf.Type.Size())}
		ft := sf.Type
		if decodesItself(ft) || ft == numberType {
			return nil
		}
		switch ft.Kind() {
		case reflect.String:
			f.kind = kindString
		case reflect.Bool:
			f.kind = kindBool
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.kind = kindInt
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			f.kind = kindUint
		case reflect.Float32, reflect.Float64:
			f.kind = kindFloat
		case reflect.Struct:
			f.kind = kindStruct
			if f.sub = For(ft); f.sub == nil {
				return nil
			}
		default:
			return nil
		}
		p.fields = append(p.fields, f)
	}
	return p
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
