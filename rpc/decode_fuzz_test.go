package rpc

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/jsonplan/jsonplantest"
)

// decodeTyped against json.Unmarshal for every payload: the same value
// (floats bit for bit) and the same error text, whether the type's plan,
// the pooled decoder or json.Unmarshal decoded it.

type decodeScalars struct {
	I   int     `json:"i"`
	I8  int8    `json:"i8"`
	I64 int64   `json:"i64"`
	U   uint    `json:"u"`
	U16 uint16  `json:"u16"`
	F32 float32 `json:"f32"`
	F64 float64 `json:"f64"`
	S   string  `json:"s"`
	B   bool    `json:"b"`
}

type decodeNested struct {
	In  decodeFlat `json:"in"`
	Out struct {
		Deep decodeScalars `json:"deep"`
	} `json:"out"`
	Skip string `json:"-"`
}

type decodeRefs struct {
	N     *int64       `json:"n"`
	In    *decodeFlat  `json:"in"`
	List  []decodeFlat `json:"list"`
	Words [][]string   `json:"words"`
}

// decodeNoPlan has no plan (a map, an interface, a type with its own
// UnmarshalJSON): the pooled decoder and json.Unmarshal decode it, and an
// error after the payload was read whole is the pooled decoder's.
type decodeNoPlan struct {
	ID  int             `json:"id"`
	At  time.Time       `json:"at"`
	Raw json.RawMessage `json:"raw"`
	M   map[string]int  `json:"m"`
	Any any             `json:"any"`
}

// sameDecode requires decodeTyped[T](data) to be json.Unmarshal's.
func sameDecode[T any](t *testing.T, data []byte) {
	t.Helper()
	in := append([]byte(nil), data...)
	got, gerr := decodeTyped[T](in)
	for i := range in { // the result must not alias the payload
		in[i] = '#'
	}
	var want T
	werr := json.Unmarshal(data, &want)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("%T, payload %q: error %v, json.Unmarshal's %v", want, data, gerr, werr)
	}
	if !jsonplantest.Same(reflect.ValueOf(want), reflect.ValueOf(got)) {
		t.Fatalf("%T, payload %q:\n got %#v\nwant %#v", want, data, got, want)
	}
}

var decodeFuzzSeeds = []string{
	`{"id":1,"name":"report"}`, `{"id":1,"name":"report","tags":["a"]}`, `null`, ` {} `, `{}x`, ``,
	`{"id":1e2}`, `{"id":-0}`, `{"f64":-0}`, `{"f32":3.5e38}`, `{"i8":128}`, `{"u":-0}`, `{"i64":-9223372036854775808}`,
	`{"name":"\ud83d\ude00"}`, `{"name":"\ud83d"}`, "{\"name\":\"\xff\"}", `{"name":"a\nb\u00e9"}`,
	`{"id":1,"id":2}`, `{"ID":1,"Name":"x"}`, "{\"\u212a\":1}", `{"in":{"id":1},"in":{"name":"x"}}`,
	`{"in":null,"out":{"deep":{"s":"x","b":true}}}`, `{"zz":[{"a":[1,2,{}]},null]}`, `{"id":"x"}`,
	`{"Skip":"x","-":1}`, `{"id":1}]`, `{"id":1,}`, `{"tags":["a"],"tags":["b","c"]}`, `{"tags":[]}`,
	`{"n":1,"in":{"id":2},"list":[{"name":"x"},null],"words":[["a"],[]]}`, `{"n":1,"n":null}`,
	`{"in":{"id":1},"in":{"name":"y"}}`, `{"at":"2026-12-03T06:00:00Z","m":{"a":1},"raw":[1]}`,
	`{"at":"yesterday","id":1}`, `{"m":{"a":"x"},"any":[1,{"b":null}]}`, `{"at":5}`, `{"list":[{"id":1}],"list":null,"list":[{"id":2}]}`,
}

func FuzzDecodeTyped(f *testing.F) {
	for _, s := range decodeFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameDecode[decodeFlat](t, data)
		sameDecode[decodeProbe](t, data)
		sameDecode[decodeScalars](t, data)
		sameDecode[decodeNested](t, data)
		sameDecode[decodeRefs](t, data)
		sameDecode[decodeNoPlan](t, data)
	})
}
