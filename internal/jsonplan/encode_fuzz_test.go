//go:build !goexperiment.jsonv2

package jsonplan

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// fuzzBytes hands out a fuzz input's bytes, then zeros.
type fuzzBytes struct {
	data []byte
}

func (r *fuzzBytes) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *fuzzBytes) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = r.byte()
	}
	return b
}

// fuzzFloats are float64 values at the edges of Marshal's formats and of
// the float kinds.
var fuzzFloats = []float64{
	0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 1e-6, 1e21, 1e-7, 1e20, 0.1,
	math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat32, math.SmallestNonzeroFloat32,
	float64(float32(1e-6)), float64(float32(1e21)), math.Nextafter(1e21, 0), math.Nextafter(1e-6, 0),
	float64(math.Nextafter32(float32(1e21), 0)), float64(math.Nextafter32(float32(1e-6), 0)),
}

// fuzzStrings are strings Marshal escapes in every way.
var fuzzStrings = []string{
	"", "<&>", "\u2028", "\u2029", "\xff", "\xe2\x80\xa8", "\xe2\x80", "\"\\", "\x00\x1f\x7f", "\b\f\n\r\t", "日本",
}

// fillValue sets v (settable) from r's bytes: every kind the encoder takes,
// nil, empty and full slices, nil and set pointers, floats from raw bits
// or at the edges. Kinds the encoder refuses stay zero; so do unexported
// fields.
func fillValue(v reflect.Value, r *fuzzBytes) {
	switch v.Kind() {
	case reflect.String:
		if b := r.byte(); b < 64 {
			v.SetString(fuzzStrings[int(b)%len(fuzzStrings)] + string(r.bytes(int(b%4))))
		} else {
			v.SetString(string(r.bytes(int(b % 24))))
		}
	case reflect.Bool:
		v.SetBool(r.byte()&1 == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if b := r.byte(); b < 32 {
			v.SetInt(int64(b%3) - 1) // -1, 0, 1: omitempty's edge
		} else {
			x := int64(binary.LittleEndian.Uint64(r.bytes(8)))
			v.SetInt(x << (64 - 8*v.Type().Size()) >> (64 - 8*v.Type().Size()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if b := r.byte(); b < 32 {
			v.SetUint(uint64(b % 2))
		} else {
			x := binary.LittleEndian.Uint64(r.bytes(8))
			v.SetUint(x << (64 - 8*v.Type().Size()) >> (64 - 8*v.Type().Size()))
		}
	case reflect.Float32:
		if b := r.byte(); b < 96 {
			v.SetFloat(float64(float32(fuzzFloats[int(b)%len(fuzzFloats)])))
		} else {
			f := math.Float32frombits(binary.LittleEndian.Uint32(r.bytes(4)))
			v.Set(reflect.ValueOf(f).Convert(v.Type()))
		}
	case reflect.Float64:
		if b := r.byte(); b < 96 {
			v.SetFloat(fuzzFloats[int(b)%len(fuzzFloats)])
		} else {
			v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(r.bytes(8))))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillValue(f, r)
			}
		}
	case reflect.Slice:
		switch b := r.byte(); b % 4 {
		case 0: // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, int(b%3)))
		default:
			n := int(b>>2) % 5
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := range n {
				fillValue(v.Index(i), r)
			}
		}
	case reflect.Pointer:
		if r.byte()%3 != 0 {
			p := reflect.New(v.Type().Elem())
			fillValue(p.Elem(), r)
			v.Set(p)
		}
	}
}

// encFuzzOmit has omitempty on every kind.
type encFuzzOmit struct {
	S   string     `json:"s,omitempty"`
	B   bool       `json:"b,omitempty"`
	I8  int8       `json:"i8,omitempty"`
	I64 int64      `json:"i64,omitempty"`
	U32 uint32     `json:"u32,omitempty"`
	F32 float32    `json:"f32,omitempty"`
	F64 float64    `json:"f64,omitempty"`
	L   []string   `json:"l,omitempty"`
	P   *float64   `json:"p,omitempty"`
	St  encInner   `json:"st,omitempty"`
	PS  *encInner  `json:"ps,omitempty"`
	LP  []*float32 `json:"lp,omitempty"`
}

// fuzzTypes are the representative types FuzzEncode fills; a seed beyond
// them picks a random type of the decoding tests' generator.
var fuzzTypes = []reflect.Type{
	reflect.TypeFor[fzScalars](), reflect.TypeFor[encNested](), reflect.TypeFor[*encNested](),
	reflect.TypeFor[encFuzzOmit](), reflect.TypeFor[encOnePtrDeep](), reflect.TypeFor[encOnePtr](),
	reflect.TypeFor[*encFuzzOmit](), reflect.TypeFor[fzSlices](), reflect.TypeFor[fzPointers](),
	reflect.TypeFor[fzOdd](), reflect.TypeFor[benchNested](),
}

// FuzzEncode fills a value of the type sel picks from data and requires
// Marshal and Append to give json.Marshal's bytes, or to refuse exactly
// when json.Marshal fails.
func FuzzEncode(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for sel := range uint64(len(fuzzTypes) + 40) {
		for range 4 {
			data := make([]byte, r.IntN(200))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			f.Add(sel, data)
		}
	}
	f.Add(uint64(0), []byte{})
	f.Add(uint64(3), []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, sel uint64, data []byte) {
		var typ reflect.Type
		if sel < uint64(len(fuzzTypes)) {
			typ = fuzzTypes[sel]
		} else if typ = b14FuzzType(sel % 4096); typ == nil || EncoderFor(typ) == nil {
			return
		}
		v := reflect.New(typ)
		fillValue(v.Elem(), &fuzzBytes{data: data})
		requireMarshal(t, v.Elem().Interface())
		if typ.Kind() != reflect.Pointer {
			requireMarshal(t, v.Interface())
		}
	})
}
