//go:build !goexperiment.jsonv2

// The encoder's tests: json.Marshal's bytes, compared for every rule the
// encoder copies (built with GOEXPERIMENT=jsonv2, no type gets an encoder:
// encode_jsonv2_test.go).

package jsonplan

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// requireMarshal requires Marshal(v) and the encoder's Append on a copy of
// v to give exactly json.Marshal(v)'s bytes, or both to report false when
// json.Marshal fails. It reports whether json.Marshal succeeded.
func requireMarshal(t testing.TB, v any) bool {
	t.Helper()
	want, err := json.Marshal(v)
	got, ok := Marshal(v)
	if err != nil {
		require.False(t, ok, "Marshal(%#v) = %s, json.Marshal fails: %v", v, got, err)
		require.Nil(t, got)
	} else {
		require.True(t, ok, "Marshal(%#v) refused, json.Marshal gives %s", v, want)
		require.Equal(t, string(want), string(got), "Marshal(%#v)", v)
	}
	// Append, after a prefix that must stay, from an addressable copy.
	e := EncoderFor(reflect.TypeOf(v))
	require.NotNil(t, e)
	cp := reflect.New(e.Type())
	cp.Elem().Set(reflect.ValueOf(v))
	dst := []byte("prefix")
	out, ok := e.Append(dst, cp.UnsafePointer())
	if err != nil {
		require.False(t, ok)
		require.Equal(t, "prefix", string(out))
	} else {
		require.True(t, ok)
		require.Equal(t, "prefix"+string(want), string(out))
	}
	return err == nil
}

func TestEncodeIntegers(t *testing.T) {
	for _, v := range []fzScalars{
		{},
		{I: math.MinInt, I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64},
		{I: math.MaxInt, I8: math.MaxInt8, I16: math.MaxInt16, I32: math.MaxInt32, I64: math.MaxInt64},
		{U: math.MaxUint, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64, UP: ^uintptr(0)},
		{I: -1, I8: -1, I16: -1, I32: -1, I64: -1, U: 1, U8: 1, U16: 1, U32: 1, U64: 1, UP: 1, B: true},
		{I: 1234567, I8: 100, I16: -12345, I32: 7, I64: 1 << 53, U8: 200, U16: 60000, U32: 1 << 31, U64: 1<<64 - 2},
	} {
		requireMarshal(t, v)
	}
}

// encFloatEdges are float64 values at the edges of Marshal's formats.
var encFloatEdges = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 1.5, 100, 123456789, 1e20, 1e-5, 3.14159,
	1e-6, math.Nextafter(1e-6, 0), math.Nextafter(1e-6, 1), 1e-7, 1.5e-7, 1e-9, 1e-10, 1e-100, 1.23e-300,
	1e21, math.Nextafter(1e21, 0), math.Nextafter(1e21, 2e21), 1e22, 1.5e99, 1e100, 1e300,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 2.2250738585072014e-308, 5e-324 * 3,
	math.MaxFloat32, math.SmallestNonzeroFloat32, 1 << 53, 1<<53 + 1, 0.30000000000000004,
	float64(float32(1e-6)), float64(float32(1e21)),
	float64(math.Nextafter32(float32(1e-6), 0)), float64(math.Nextafter32(float32(1e-6), 1)),
	float64(math.Nextafter32(float32(1e21), 0)), float64(math.Nextafter32(float32(1e21), 2e21)),
	float64(float32(0.1)), float64(float32(16777217)),
}

func TestEncodeFloats(t *testing.T) {
	for _, f := range encFloatEdges {
		for _, sign := range []float64{1, -1} {
			requireMarshal(t, fzScalars{F64: sign * f, F32: float32(sign * f)})
			requireMarshal(t, struct{ F float32 }{float32(sign * f)})
		}
	}
	// -0: Marshal writes "-0", omitempty omits it (it equals 0).
	requireMarshal(t, struct{ A, B float64 }{math.Copysign(0, -1), 0})
	got, ok := Marshal(struct{ F float32 }{float32(math.Copysign(0, -1))})
	require.True(t, ok)
	require.Equal(t, `{"F":-0}`, string(got))
	requireMarshal(t, struct {
		F float64 `json:"f,omitempty"`
		G float32 `json:"g,omitempty"`
	}{math.Copysign(0, -1), float32(math.Copysign(0, -1))})
	// The float32 cutoffs are float32's: a float32 just below float32(1e21)
	// is 'f', float32(1e21) itself (above 1e21 in float64) 'e'.
	got, _ = Marshal(struct{ F float32 }{1e21})
	require.Equal(t, `{"F":1e+21}`, string(got))
	got, _ = Marshal(struct{ F float32 }{1e-7})
	require.Equal(t, `{"F":1e-7}`, string(got))
}

func TestEncodeNaNAndInf(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -math.NaN()} {
		require.False(t, requireMarshal(t, struct{ F float64 }{f}))
		require.False(t, requireMarshal(t, struct{ F float32 }{float32(f)}))
		require.False(t, requireMarshal(t, struct {
			A string
			F []float64 `json:",omitempty"`
		}{"x", []float64{1, f}}))
		// NaN is not zero: omitempty does not omit it.
		require.False(t, requireMarshal(t, struct {
			F float64 `json:",omitempty"`
		}{f}))
		require.False(t, requireMarshal(t, &struct{ P *float32 }{P: new(float32(f))}))
	}
}

func TestEncodeStrings(t *testing.T) {
	var all strings.Builder
	for b := range 0x80 {
		all.WriteByte(byte(b))
	}
	strs := []string{
		"", "plain", `"quoted"`, `back\slash`, "\b\f\n\r\t", "\x00\x01\x1f\x7f", "<script>&amp;</script>",
		"é", "日本語", "emoji 🎉", "\u2028\u2029", "a\u2028b\u2029c", "\u2027\u202a", "\ufffd", "\xff", "a\xffb",
		"\xc3", "\xc3(", "\xe2\x80", "\xe2\x80\xa8", "\xf0\x9f\x8e", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\x80",
		"\x80\x81", all.String(), strings.Repeat("x<", 300), "tail\xe2\x80\xa9",
	}
	for b := range 0x100 {
		strs = append(strs, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	for r := rune(0x80); r < 0x3000; r += 7 {
		strs = append(strs, string(r))
	}
	for _, s := range strs {
		requireMarshal(t, struct{ S string }{s})
	}
	requireMarshal(t, struct{ S []string }{strs})
}

// TestEncodeKeys: names as encoding/json derives them (tags valid or not,
// "-,", punctuation), with < > & escaped as Marshal escapes them.
func TestEncodeKeys(t *testing.T) {
	type keys struct {
		Skip  string `json:"-"`
		Dash  string `json:"-,"` //lint:ignore SA5008 the name "-", as encoding/json reads it
		Empty string `json:",omitempty"`
		Named string `json:"renamed"`
		HTML  string `json:"<a&b>"`
		Punct string `json:"!#$%()*+-./:;=?@[]^_{|}~ x"`
		Bad   string `json:"a\\b"` //lint:ignore SA5008 a tag encoding/json ignores, on purpose
		Quote string `json:"q\"q"` //lint:ignore SA5008 a tag encoding/json ignores, on purpose
		Other string `json:",,"`   //lint:ignore SA5008 a tag encoding/json ignores, on purpose
		Digit string `json:"1"`
		unexp string
	}
	requireMarshal(t, keys{Skip: "s", Dash: "d", Empty: "e", Named: "n", HTML: "h", unexp: "u"})
	requireMarshal(t, keys{})
	got, _ := Marshal(keys{})
	require.Contains(t, string(got), `"\u003ca\u0026b\u003e":""`)
}

type encInner struct {
	X string `json:"x"`
	N int16  `json:"n,omitempty"`
}

type encNested struct {
	A    encInner  `json:"a"`
	B    encInner  `json:"b,omitempty"` // a struct is never omitted
	P    *encInner `json:"p"`
	PO   *encInner `json:"po,omitempty"`
	L    []encInner
	LP   []*encInner `json:"lp,omitempty"`
	LL   [][]int     `json:"ll"`
	PL   *[]string   `json:"pl"`
	E    struct{}    `json:"e,omitempty"`
	Dur  time.Duration
	Deep struct {
		Y struct {
			Z []*int8
		}
	}
}

func TestEncodeNested(t *testing.T) {
	one := int8(1)
	for _, v := range []encNested{
		{},
		{A: encInner{"a", 1}, P: &encInner{}, PO: &encInner{X: "<"}, L: []encInner{}, LP: []*encInner{nil, {}},
			LL: [][]int{nil, {}, {1, -2}}, PL: &[]string{}, Dur: time.Second},
		{L: []encInner{{"x", 0}, {"y", -1}}, LL: [][]int{}, PL: new([]string), LP: []*encInner{}},
	} {
		v.Deep.Y.Z = []*int8{nil, &one}
		requireMarshal(t, v)
		requireMarshal(t, &v)
	}
	requireMarshal(t, (*encNested)(nil))
}

// TestEncodeOmitEmpty: omitempty omits each kind's empty values, and no
// others.
func TestEncodeOmitEmpty(t *testing.T) {
	type omit struct {
		S   string    `json:"s,omitempty"`
		B   bool      `json:"b,omitempty"`
		I   int       `json:"i,omitempty"`
		I8  int8      `json:",omitempty"`
		U16 uint16    `json:",omitempty"`
		UP  uintptr   `json:",omitempty"`
		F32 float32   `json:",omitempty"`
		F64 float64   `json:",omitempty"`
		L   []int     `json:",omitempty"`
		P   *string   `json:",omitempty"`
		PS  *[]int    `json:",omitempty"`
		St  encInner  `json:",omitempty"`
		SP  *encInner `json:",omitempty"`
		Z   struct{}  `json:",omitempty"`
		//lint:ignore SA5008 an option encoding/json ignores, on purpose
		Alt []encInner `json:"alt,omitempty,foo"`
	}
	empty := ""
	requireMarshal(t, omit{})
	requireMarshal(t, omit{L: []int{}, PS: &[]int{}, P: &empty, SP: &encInner{}})
	requireMarshal(t, omit{S: "x", B: true, I: -1, I8: 1, U16: 1, UP: 1, F32: 1e-40, F64: -5e-324, L: []int{0},
		Alt: []encInner{{}}})
	got, ok := Marshal(omit{L: []int{}})
	require.True(t, ok)
	require.Equal(t, `{"St":{"x":""},"Z":{}}`, string(got))
	// Nothing written: "{}".
	requireMarshal(t, struct {
		A int `json:",omitempty"`
	}{})
	requireMarshal(t, struct{}{})
	requireMarshal(t, struct{ a int }{1})
}

func TestEncodeSlicesAndPointers(t *testing.T) {
	type sp struct {
		L  []int
		P  *int
		PP *[]bool
		LS []string
		LF []float32
		LU []uint16
	}
	n := 7
	requireMarshal(t, sp{})
	requireMarshal(t, sp{L: []int{}, P: &n, PP: &[]bool{true, false}, LS: []string{}, LF: []float32{}, LU: []uint16{}})
	requireMarshal(t, sp{L: []int{1, 2, 3}, LS: []string{"", "a"}, LF: []float32{0.1, 1e30}, LU: []uint16{65535}})
	got, _ := Marshal(sp{L: []int{}})
	require.Equal(t, `{"L":[],"P":null,"PP":null,"LS":null,"LF":null,"LU":null}`, string(got))
}

// Pointer-shaped types sit in an interface's data word: Marshal must read
// them there, not through it.
type encOnePtr struct{ P *int }
type encOnePtrNested struct{ S encOnePtr }
type encOnePtrDeep struct {
	S struct{ T encOnePtrNested }
}
type encPtrAndInt struct {
	P *int
	N int
}
type encOneSlice struct{ L []int }
type encOneString struct{ S string }
type encPtrToStruct struct{ P *encInner }
type encZeroThenPtr struct {
	E struct{}
	P *int
}
type encPtrThenZero struct {
	P *int
	E struct{} // a trailing zero-size field pads the struct: two words
}

func TestEncodeInterfaceDataWord(t *testing.T) {
	n := 42
	cases := []any{
		encOnePtr{}, encOnePtr{&n}, encOnePtrNested{}, encOnePtrNested{encOnePtr{&n}},
		encOnePtrDeep{}, encPtrAndInt{&n, 1}, encPtrAndInt{}, encOneSlice{[]int{1}}, encOneString{"s"},
		encPtrToStruct{}, encPtrToStruct{&encInner{X: "in"}}, encZeroThenPtr{}, encZeroThenPtr{P: &n},
		encPtrThenZero{}, encPtrThenZero{P: &n},
		&encOnePtr{&n}, (*encOnePtr)(nil), &encOneString{"p"}, (*encOneString)(nil), &encPtrAndInt{&n, 2},
		struct{}{}, &struct{}{}, struct{ P *string }{new("x")}, &encNested{},
	}
	var deep encOnePtrDeep
	deep.S.T.S.P = &n
	cases = append(cases, deep)
	for _, v := range cases {
		requireMarshal(t, v)
	}
	for _, tc := range []struct {
		typ    reflect.Type
		direct bool
	}{
		{reflect.TypeFor[encOnePtr](), true},
		{reflect.TypeFor[encOnePtrNested](), true},
		{reflect.TypeFor[encOnePtrDeep](), true},
		{reflect.TypeFor[*encOneString](), true},
		{reflect.TypeFor[encPtrToStruct](), true},
		{reflect.TypeFor[encZeroThenPtr](), true},
		{reflect.TypeFor[struct {
			E struct{}
			S encOnePtrNested
			F struct{}
		}](), false},
		{reflect.TypeFor[encPtrThenZero](), false},
		{reflect.TypeFor[encPtrAndInt](), false},
		{reflect.TypeFor[encOneSlice](), false},
		{reflect.TypeFor[encOneString](), false},
		{reflect.TypeFor[struct{}](), false},
	} {
		e := EncoderFor(tc.typ)
		require.NotNil(t, e, "%v", tc.typ)
		require.Equal(t, tc.direct, e.direct, "%v", tc.typ)
		require.True(t, e.boxed, "%v", tc.typ)
	}
	// Values the runtime stores statically (zero-size, constants) too.
	requireMarshal(t, any(encOneString{}))
}

type encJSONVal struct{ A int }

func (encJSONVal) MarshalJSON() ([]byte, error) { return []byte(`"v"`), nil }

type encJSONPtr struct{ A int }

func (*encJSONPtr) MarshalJSON() ([]byte, error) { return []byte(`"p"`), nil }

type encTextVal int

func (encTextVal) MarshalText() ([]byte, error) { return []byte("t"), nil }

type encTextPtr string

func (*encTextPtr) MarshalText() ([]byte, error) { return []byte("t"), nil }

type encJSONSlice []int

func (encJSONSlice) MarshalJSON() ([]byte, error) { return []byte(`1`), nil }

// TestEncoderForRefuses: every type outside the encoder's shapes gets no
// encoder, and Marshal leaves its values to json.Marshal.
func TestEncoderForRefuses(t *testing.T) {
	refused := map[string]any{
		"not a struct":               1,
		"string":                     "s",
		"slice":                      []encInner{},
		"pointer to pointer":         new(&encInner{}),
		"pointer to int":             new(1),
		"Marshaler, value receiver":  encJSONVal{},
		"Marshaler, *T receiver":     encJSONPtr{},
		"*Marshaler":                 &encJSONPtr{},
		"Marshaler field":            struct{ A encJSONVal }{},
		"*T Marshaler field":         struct{ A encJSONPtr }{},
		"Marshaler pointer field":    struct{ A *encJSONVal }{},
		"Marshaler slice field":      struct{ A []encJSONPtr }{},
		"Marshaler slice type":       struct{ A encJSONSlice }{},
		"TextMarshaler field":        struct{ A encTextVal }{},
		"*T TextMarshaler field":     struct{ A encTextPtr }{},
		"TextMarshaler in a pointer": struct{ A *struct{ B []encTextPtr } }{},
		"time.Time":                  struct{ A time.Time }{},
		"omitzero": struct {
			A int `json:"a,omitzero"`
		}{},
		"omitzero and omitempty": struct {
			A int `json:",omitempty,omitzero"`
		}{},
		"nested omitzero": struct {
			A []struct {
				B string `json:",omitzero"`
			}
		}{},
		"map":             struct{ A map[string]int }{},
		"interface":       struct{ A any }{},
		"array":           struct{ A [2]int }{},
		"bytes":           struct{ A []byte }{},
		"json.Number":     struct{ A json.Number }{},
		"json.RawMessage": struct{ A json.RawMessage }{},
		"embedded":        struct{ encInner }{},
		",string": struct {
			A int `json:",string"`
		}{},
		"names fold alike": struct{ ID, Id int }{},
		"same name": struct {
			A int
			B int `json:"A"`
		}{},
		"self-referential": selfRef{},
		"non-ASCII name":   struct{ Ä int }{},
		"chan":             struct{ A chan int }{},
	}
	for name, v := range refused {
		typ := reflect.TypeOf(v)
		require.Nil(t, EncoderFor(typ), name)
		require.Nil(t, EncoderFor(reflect.PointerTo(typ)), name)
		b, ok := Marshal(v)
		require.False(t, ok, name)
		require.Nil(t, b, name)
	}
	require.Nil(t, EncoderFor(nil))
	b, ok := Marshal(nil)
	require.False(t, ok)
	require.Nil(t, b)
	var nilIface json.Marshaler
	_, ok = Marshal(nilIface)
	require.False(t, ok)

	// Deeper than maxEncodeDepth: refused (For takes it).
	deep := reflect.TypeFor[int]()
	for range maxEncodeDepth + 1 {
		deep = reflect.StructOf([]reflect.StructField{{Name: "A", Type: reflect.SliceOf(deep)}})
	}
	require.NotNil(t, For(deep))
	require.Nil(t, EncoderFor(deep))
}

// TestEncodeConcurrent: goroutines share encoders and the size hint, with
// values of very different sizes (run with -race).
func TestEncodeConcurrent(t *testing.T) {
	type v struct {
		ID   int      `json:"id"`
		Tags []string `json:"tags"`
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				val := v{ID: i, Tags: make([]string, (i*g)%37)}
				for j := range val.Tags {
					val.Tags[j] = strings.Repeat("t", j)
				}
				want, err := json.Marshal(val)
				if err != nil {
					t.Error(err)
					return
				}
				got, ok := Marshal(val)
				if !ok || string(got) != string(want) {
					t.Errorf("Marshal(%v) = %s, %v; want %s", val, got, ok, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestEncodeOneAllocation: Marshal allocates the result and nothing else
// once the hint has seen the type's size.
func TestEncodeOneAllocation(t *testing.T) {
	type small struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	for _, v := range []any{
		small{ID: 1, Name: "name"}, &small{ID: 2}, encOnePtr{new(1)},
		benchNested{ID: 1, Name: "x", Tags: []string{"a", "b"}, Owner: &benchInner{Name: "o", Score: 1.5}},
	} {
		_, ok := Marshal(v)
		require.True(t, ok)
		allocs := testing.AllocsPerRun(100, func() { _, _ = Marshal(v) })
		require.Equal(t, 1.0, allocs, "%T", v)
	}
	// Append into a buffer with room: none.
	v := small{ID: 3, Name: "n"}
	e := EncoderFor(reflect.TypeFor[small]())
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() { buf, _ = e.Append(buf[:0], unsafe.Pointer(&v)) })
	require.Zero(t, allocs)
}

// TestEncodeHint: a larger value raises the hint at once, smaller ones
// lower it slowly, never below what they need.
func TestEncodeHint(t *testing.T) {
	type h struct{ S string }
	e := EncoderFor(reflect.TypeFor[h]())
	big := h{strings.Repeat("x", 1000)}
	b, ok := Marshal(big)
	require.True(t, ok)
	require.GreaterOrEqual(t, int(e.hint.Load()), len(b))
	for range 100 {
		b, ok = Marshal(h{"y"})
		require.True(t, ok)
		require.Equal(t, `{"S":"y"}`, string(b))
	}
	require.Less(t, int(e.hint.Load()), 100)
	require.GreaterOrEqual(t, int(e.hint.Load()), len(`{"S":"y"}`))
	// A huge value: the hint stops at maxHint.
	huge := h{strings.Repeat("z", 4*maxHint)}
	b, ok = Marshal(huge)
	require.True(t, ok)
	require.Equal(t, `{"S":"`+huge.S+`"}`, string(b))
	require.LessOrEqual(t, int(e.hint.Load()), maxHint*9/8)
}

func TestEncodeGeneratedTypes(t *testing.T) {
	// Random types (the decoding tests' generator: every kind, tag and
	// special type) with random values: whatever gets an encoder encodes
	// as json.Marshal does.
	encoded := 0
	r := rand.New(rand.NewPCG(3, 4))
	for seed := range uint64(3000) {
		typ := b14FuzzType(seed)
		if typ == nil || EncoderFor(typ) == nil {
			continue
		}
		for i := range 5 {
			v := reflect.New(typ)
			data := make([]byte, 64<<(i%3))
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			fillValue(v.Elem(), &fuzzBytes{data: data})
			requireMarshal(t, v.Elem().Interface())
			requireMarshal(t, v.Interface())
			encoded++
		}
	}
	require.Greater(t, encoded, 1000)
}
