//go:build !goexperiment.jsonv2

// The plan's tests: encoding/json v1's rules, which the plan copies (built
// with GOEXPERIMENT=jsonv2, no type gets a plan: break14_jsonv2_test.go).

package jsonplan

import (
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/jsonplan/jsonplantest"
)

// The break-it pass's differential generator: random struct types built
// with reflect.StructOf (random field names, including ones that fold
// alike or are unexported, random tags, including invalid and non-ASCII
// names and options, every kind the plan takes and the kinds json decodes
// specially), and random documents for each type (its own keys in every
// case, Kelvin sign and long s, escaped keys, values at every kind's
// edges, wrong kinds, nulls, repeated keys, odd whitespace, byte
// mutations). Whatever the plan takes must be json.Unmarshal's value with
// no error, and must not alias the payload; For and Decode must never
// panic. BREAK14_GEN_SECONDS runs it for that long (default: a second).

type b14Str string
type b14Int8 int8
type b14F32 float32

type b14TextPtr string

func (t *b14TextPtr) UnmarshalText(b []byte) error { *t = b14TextPtr("t:" + string(b)); return nil }

type b14TextVal struct{ V string }

func (b14TextVal) UnmarshalText([]byte) error { return nil }

type b14JSONPtr struct{ V string }

func (j *b14JSONPtr) UnmarshalJSON(b []byte) error { j.V = "j:" + string(b); return nil }

type b14JSONVal int

func (b14JSONVal) UnmarshalJSON([]byte) error { return nil }

// b14Leaves are the scalar types the plan takes.
var b14Leaves = []reflect.Type{
	reflect.TypeFor[string](), reflect.TypeFor[bool](),
	reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](), reflect.TypeFor[int64](),
	reflect.TypeFor[uint](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64](),
	reflect.TypeFor[uintptr](), reflect.TypeFor[float32](), reflect.TypeFor[float64](),
	reflect.TypeFor[b14Str](), reflect.TypeFor[b14Int8](), reflect.TypeFor[b14F32](), reflect.TypeFor[time.Duration](),
	reflect.TypeFor[struct{}](),
}

// b14Specials are types encoding/json decodes its own way: a type holding
// one must get no plan (or, for a field the plan skips, not matter).
var b14Specials = []reflect.Type{
	reflect.TypeFor[json.Number](), reflect.TypeFor[json.RawMessage](), reflect.TypeFor[[]byte](),
	reflect.TypeFor[[2]int](), reflect.TypeFor[[0]int](), reflect.TypeFor[[4]byte](), reflect.TypeFor[map[string]int](),
	reflect.TypeFor[any](), reflect.TypeFor[time.Time](), reflect.TypeFor[*big.Int](), reflect.TypeFor[big.Int](),
	reflect.TypeFor[b14TextPtr](), reflect.TypeFor[b14TextVal](), reflect.TypeFor[b14JSONPtr](), reflect.TypeFor[b14JSONVal](),
	reflect.TypeFor[*b14JSONVal](), reflect.TypeFor[complex64](), reflect.TypeFor[chan int](), reflect.TypeFor[func()](),
	reflect.TypeFor[**int](), reflect.TypeFor[map[b14TextPtr]int](),
}

// b14Names are Go field names: some fold alike, some are not ASCII (the
// Kelvin sign and Ä are upper case letters, so exported), some unexported.
var b14Names = []string{
	"A", "B", "ID", "Id", "Name", "NAME", "K", "S", "SS", "X", "Y_z", "Ä", "\u212a", "\u212aey", "Key", "Ss",
	"a", "b", "id", "k", "s", "ſ", "x", "_", "Xx", "XX", "Long" + strings.Repeat("x", 40),
}

// b14Tags are struct tags, valid or not.
var b14Tags = []string{
	``, ``, ``, `json:"-"`, `json:"-,"`, `json:",omitempty"`, `json:"x"`, `json:"X"`, `json:"id"`, `json:"ID"`,
	`json:"k"`, `json:"K"`, `json:"s"`, `json:"ſ"`, `json:"\u212a"`, `json:"a\\b"`, `json:"q'q"`, `json:"with space"`,
	`json:"x,string"`, `json:",string"`, `json:"é"`, `json:""`, `json:"a-b"`, `json:"1"`, `json:"@"`, "json:\"`\"",
	`json:"\u0041"`, `json:"a,omitempty,string"`, `json:"x,omitzero"`, `json:" "`, `json:"a\"b"`, `json:"\xff"`,
	`json:"name" xml:"other"`, `xml:"x"`, `json:"NAME"`, `json:"ss"`, `json:"SS"`, `json:"Key"`, `json:"key"`,
	`json:"x ,string"`, `json:"x, string"`, `json:"%"`, `json:"\u00a0"`,
}

type b14Gen struct {
	r *rand.Rand
}

func (g *b14Gen) pick(n int) int { return g.r.IntN(n) }

// typ returns a random type of at most depth levels of nesting.
func (g *b14Gen) typ(depth int) reflect.Type {
	switch x := g.pick(20); {
	case depth > 0 && x < 3:
		return reflect.SliceOf(g.typ(depth - 1))
	case depth > 0 && x < 6:
		return reflect.PointerTo(g.typ(depth - 1))
	case depth > 0 && x < 9:
		return g.structType(depth - 1)
	case x == 19:
		return b14Specials[g.pick(len(b14Specials))]
	default:
		return b14Leaves[g.pick(len(b14Leaves))]
	}
}

func (g *b14Gen) structType(depth int) reflect.Type {
	n := g.pick(6)
	var fields []reflect.StructField
	used := map[string]bool{}
	for range n {
		name := b14Names[g.pick(len(b14Names))]
		if used[name] {
			continue
		}
		used[name] = true
		sf := reflect.StructField{Name: name, Type: g.typ(depth), Tag: reflect.StructTag(b14Tags[g.pick(len(b14Tags))])}
		if !token(name) {
			sf.PkgPath = "github.com/kafkarpc/kafkarpc/internal/jsonplan"
		}
		fields = append(fields, sf)
	}
	return reflect.StructOf(fields)
}

// token reports whether a Go field name is exported.
func token(name string) bool {
	return reflect.StructField{Name: name}.IsExported()
}

// keysFor returns the keys a document may use for the struct type t's
// fields, each with the type of the value to put there.
func (g *b14Gen) keysFor(t reflect.Type) ([]string, []reflect.Type) {
	var keys []string
	var types []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		cands := []string{sf.Name}
		if name, _, _ := strings.Cut(sf.Tag.Get("json"), ","); name != "" {
			cands = append(cands, name)
		}
		for _, c := range cands {
			keys = append(keys, c)
			types = append(types, sf.Type)
		}
	}
	return keys, types
}

// variant returns a spelling of key: as is, in another ASCII case, with
// k/s as the Kelvin sign and long s (or back), escaped, or unknown.
func (g *b14Gen) variant(key string) string {
	switch g.pick(12) {
	case 0:
		return strings.ToUpper(key)
	case 1:
		return strings.ToLower(key)
	case 2:
		b := []byte(key)
		for i := range b {
			if g.pick(2) == 0 && b[i] >= 'a' && b[i] <= 'z' {
				b[i] -= 'a' - 'A'
			} else if g.pick(2) == 0 && b[i] >= 'A' && b[i] <= 'Z' {
				b[i] += 'a' - 'A'
			}
		}
		return string(b)
	case 3:
		r := strings.NewReplacer("k", "\u212a", "K", "\u212a", "s", "ſ", "S", "ſ")
		return r.Replace(key)
	case 4:
		r := strings.NewReplacer("\u212a", "k", "ſ", "s")
		return r.Replace(key)
	case 5:
		if key == "" {
			return key
		}
		r := []rune(key)
		return fmt.Sprintf(`\u%04x`, r[0]) + string(r[1:])
	case 6:
		return []string{"", "zz", "Unknown", "\\\"", "\\u0000", key + "\\u0000", key + " ", " " + key}[g.pick(8)]
	}
	return key
}

func (g *b14Gen) ws() string {
	switch g.pick(30) {
	case 0:
		return "\v"
	case 1:
		return "\u00a0"
	case 2:
		return "\ufeff"
	case 3, 4, 5:
		return []string{" ", "\n", "\t", "\r", " \n\t\r "}[g.pick(5)]
	}
	return ""
}

// value returns a JSON value for t, mostly of t's kind.
func (g *b14Gen) value(t reflect.Type, depth int) string {
	switch g.pick(25) {
	case 0:
		return "null"
	case 1:
		return g.any(depth)
	}
	switch t {
	case reflect.TypeFor[json.Number]():
		return []string{`1`, `"1"`, `"x"`, `-0.5e3`, `""`}[g.pick(5)]
	case reflect.TypeFor[time.Time]():
		return []string{`"2020-01-02T03:04:05Z"`, `"x"`, `1`}[g.pick(3)]
	case reflect.TypeFor[*big.Int](), reflect.TypeFor[big.Int]():
		return []string{`123456789012345678901234567890`, `-1`, `"5"`, `1.5`}[g.pick(4)]
	}
	switch t.Kind() {
	case reflect.String:
		return g.str()
	case reflect.Bool:
		return []string{"true", "false", "tru", "True"}[g.pick(4)]
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return g.integer(t)
	case reflect.Float32, reflect.Float64:
		return g.float()
	case reflect.Struct:
		return g.object(t, depth)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && g.pick(2) == 0 {
			return []string{`"AQID"`, `"AQI="`, `"!!"`, `""`}[g.pick(4)]
		}
		n := g.pick(5)
		if g.pick(10) == 0 {
			n = 17 + g.pick(40)
		}
		parts := make([]string, n)
		for i := range parts {
			parts[i] = g.ws() + g.value(t.Elem(), depth+1) + g.ws()
		}
		return "[" + strings.Join(parts, ",") + "]"
	case reflect.Pointer:
		return g.value(t.Elem(), depth)
	case reflect.Map:
		return `{"a":1,"b":` + g.any(depth+1) + `}`
	}
	return g.any(depth)
}

func (g *b14Gen) object(t reflect.Type, depth int) string {
	keys, types := g.keysFor(t)
	n := g.pick(6)
	parts := make([]string, 0, n)
	for range n {
		var k, v string
		if len(keys) > 0 && g.pick(5) > 0 {
			i := g.pick(len(keys))
			k, v = g.variant(keys[i]), g.value(types[i], depth+1)
		} else {
			k, v = g.variant("zz"), g.any(depth+1)
		}
		parts = append(parts, g.ws()+`"`+k+`"`+g.ws()+":"+g.ws()+v+g.ws())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var b14Strings = []string{
	`""`, `"a"`, `"\/\b\f\n\r\t\"\\"`, `"\u0000"`, "\"\x00\"", `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`,
	`"\ud83d\u0041"`, `"\u2028\u2029"`, "\"\u2028\"", "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xc0\x80\"", "\"é世😀\"",
	`"\uD83D\uDE00"`, `"\u00E9"`, "\"\x7f\"", "\"\x1f\"", `"\x"`, `"\u12"`, "\"\xf4\x90\x80\x80\"", `"` + strings.Repeat("é", 70) + `\n"`,
	`"` + strings.Repeat("ab", 100) + `"`, `"\ud800\udc00\udbff\udfff"`, `"\u0041\u00410"`, "\"\xef\xbb\xbf\"",
}

func (g *b14Gen) str() string { return b14Strings[g.pick(len(b14Strings))] }

func (g *b14Gen) integer(t reflect.Type) string {
	bits := t.Bits()
	switch g.pick(10) {
	case 0:
		return strconv.FormatInt(-1<<(bits-1), 10)
	case 1:
		return strconv.FormatUint(1<<(bits-1)-1, 10)
	case 2:
		return strconv.FormatUint(1<<(bits-1), 10)
	case 3:
		if bits == 64 {
			return "18446744073709551615"
		}
		return strconv.FormatUint(1<<bits-1, 10)
	case 4:
		if bits == 64 {
			return "18446744073709551616"
		}
		return strconv.FormatUint(1<<bits, 10)
	case 5:
		return "-" + strconv.FormatUint(1<<(bits-1)+1, 10)
	case 6:
		return []string{"-0", "0", "00", "-00", "01", "1e2", "1.0", "1E+0", "-", "+1", "0x1", `"1"`, "1.5"}[g.pick(13)]
	}
	return strconv.Itoa(g.pick(300) - 150)
}

var b14Floats = []string{
	"0", "-0", "-0.0", "0e0", "1E+2", "1e-2", "0.1", "3.4028235e38", "3.4028236e38", "3.5e38", "1e39", "1e309",
	"1e-400", "-1e-400", "1.40129846e-45", "7e-46", "4.9e-324", "2.4703282292062328e-324", "123456789012345678901234567890",
	"1.7976931348623157e308", "1.7976931348623159e308", "1" + strings.Repeat("0", 400), "0." + strings.Repeat("0", 400) + "1",
	"1e1000000000", "1e-1000000000", "01", "1.", ".5", "1e", "-", "NaN", `"1"`, "0.30000000000000004", "16777217",
}

func (g *b14Gen) float() string { return b14Floats[g.pick(len(b14Floats))] }

// any returns a random JSON value (or, rarely, not quite one).
func (g *b14Gen) any(depth int) string {
	if depth > 40 {
		return "0"
	}
	switch g.pick(9) {
	case 0:
		return g.str()
	case 1:
		return g.float()
	case 2:
		return []string{"true", "false", "null", "nul", "truex"}[g.pick(5)]
	case 3:
		n := 1 + g.pick(40)
		return strings.Repeat("[", n) + strings.Repeat("]", n)
	case 4:
		return `{"a":` + g.any(depth+1) + `,"a":[` + g.any(depth+1) + `,{}]}`
	case 5:
		return `[` + g.any(depth+1) + `,` + g.any(depth+1) + `]`
	case 6:
		return `{"` + g.variant("zz") + `":` + g.any(depth+1) + `}`
	}
	return strconv.Itoa(g.pick(10))
}

// doc returns a document for t: usually its object, sometimes mutated.
func (g *b14Gen) doc(t reflect.Type) []byte {
	s := g.ws() + g.value(t, 0) + g.ws()
	if g.pick(20) == 0 {
		s += []string{"x", "}", "]", " {}", ",", "\x00"}[g.pick(6)]
	}
	b := []byte(s)
	const bytes = "{}[]\",:\\ 0-e.nx\xff\x00"
	if len(b) > 0 && g.pick(8) == 0 {
		i := g.pick(len(b))
		switch g.pick(3) {
		case 0:
			b[i] = bytes[g.pick(len(bytes))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		case 2:
			b = append(b[:i], append([]byte{bytes[g.pick(len(bytes))]}, b[i:]...)...)
		}
	}
	return b
}

// b14Diff decodes data into a new typ with typ's plan p and, if the plan
// takes it, compares with json.Unmarshal: it reports whether the plan took
// data, and an error when json.Unmarshal fails or decodes another value,
// when the value shares memory with data, or when the plan panics.
func b14Diff(typ reflect.Type, p *Plan, data []byte) (taken bool, err error) {
	in := append([]byte(nil), data...)
	got := reflect.New(typ)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("plan for %v panics on %q: %v", typ, data, r)
			}
		}()
		taken = p.Decode(in, got.UnsafePointer())
	}()
	if !taken || err != nil {
		return taken, err
	}
	for i := range in {
		in[i] = '#'
	}
	want := reflect.New(typ)
	if err := json.Unmarshal(data, want.Interface()); err != nil {
		return true, fmt.Errorf("type %v: the plan took %.300q, json.Unmarshal says %v", typ, data, err)
	}
	if !jsonplantest.Same(want.Elem(), got.Elem()) {
		return true, fmt.Errorf("type %v, payload %.300q:\n got %#v\nwant %#v", typ, data, got.Elem(), want.Elem())
	}
	return true, nil
}

// b14Check is b14Diff failing t.
func b14Check(t *testing.T, typ reflect.Type, p *Plan, data []byte) bool {
	t.Helper()
	taken, err := b14Diff(typ, p, data)
	if err != nil {
		t.Fatal(err)
	}
	return taken
}

// TestBreak14Generated runs random types against random documents.
func TestBreak14Generated(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BREAK14_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	dur := time.Second
	if s := os.Getenv("BREAK14_GEN_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		dur = time.Duration(n) * time.Second
	}
	t.Logf("seed %d, %v", seed, dur)
	g := &b14Gen{r: rand.New(rand.NewPCG(seed, 14))}
	var types, planned, docs, taken int
	for end := time.Now().Add(dur); time.Now().Before(end); {
		var typ reflect.Type
		func() {
			defer func() {
				if r := recover(); r != nil {
					typ = nil // StructOf refused the random fields
				}
			}()
			typ = g.structType(3)
		}()
		if typ == nil {
			continue
		}
		types++
		var p *Plan
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("For(%v) panics: %v", typ, r)
				}
			}()
			p = For(typ)
		}()
		if p == nil {
			continue
		}
		planned++
		for range 50 {
			docs++
			if b14Check(t, typ, p, g.doc(typ)) {
				taken++
			}
		}
	}
	t.Logf("%d types, %d with a plan, %d documents, %d taken by the plan", types, planned, docs, taken)
	if taken == 0 {
		t.Fatal("the plan took no generated document")
	}
}
