package rpc

import (
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/kafkarpc/kafkarpc/internal/jsonplan"
	"github.com/kafkarpc/kafkarpc/internal/jsonplan/jsonplantest"
	"github.com/stretchr/testify/require"
)

// The break-it pass on decodeTyped: for every payload and every type, the
// value and the error must be json.Unmarshal's (the error's type and every
// field of it, not only its text), the value must not share memory with
// the payload, and many goroutines decoding many types for the first time
// at once must agree with json.Unmarshal too.

type b14Name string

type b14Inner struct {
	X string  `json:"x"`
	N int16   `json:"n"`
	L []int8  `json:"l"`
	P *uint32 `json:"p"`
}

// b14Plain is a type the plan takes: every kind it decodes.
type b14Plain struct {
	ID     int                `json:"id"`
	Name   b14Name            `json:"name"`
	OK     bool               `json:"ok"`
	F32    float32            `json:"f32"`
	F64    float64            `json:"f64"`
	U8     uint8              `json:"u8"`
	I64    int64              `json:"i64"`
	In     b14Inner           `json:"in"`
	PIn    *b14Inner          `json:"pin"`
	List   []b14Inner         `json:"list"`
	Words  [][]string         `json:"words"`
	PS     *[]string          `json:"ps"`
	Ptrs   []*int             `json:"ptrs"`
	Dur    time.Duration      `json:"dur"`
	Anon   struct{ Z string } `json:"anon"`
	KelvIn string             `json:"kelvin"` // "\u212aelvin" folds to it in encoding/json
	Longs  string             `json:"s"`      // "ſ" folds to it in encoding/json
	skip   int
}

// b14Text decodes itself from text, through its pointer.
type b14Text string

func (t *b14Text) UnmarshalText(b []byte) error {
	if string(b) == "bad" {
		return fmt.Errorf("b14Text: bad")
	}
	*t = b14Text("text:" + string(b))
	return nil
}

// b14JSONVal decodes itself from JSON with a value receiver: it can only
// fail (on "err"), never change the value.
type b14JSONVal struct{ N int }

func (b14JSONVal) UnmarshalJSON(b []byte) error {
	if string(b) == `"err"` {
		return fmt.Errorf("b14JSONVal: err")
	}
	return nil
}

// b14JSONPtr decodes itself from JSON through its pointer: a named scalar.
type b14JSONPtr int

func (n *b14JSONPtr) UnmarshalJSON(b []byte) error {
	*n = b14JSONPtr(len(b))
	return nil
}

// b14Special holds, in fields, nested and in slices, every type
// encoding/json decodes its own way.
type b14Special struct {
	Text   b14Text                `json:"text"`
	TextP  *b14Text               `json:"textp"`
	Texts  []b14Text              `json:"texts"`
	JP     b14JSONPtr             `json:"jp"`
	JPs    []b14JSONPtr           `json:"jps"`
	JV     b14JSONVal             `json:"jv"`
	JVs    []b14JSONVal           `json:"jvs"`
	JVP    *b14JSONVal            `json:"jvp"`
	Nested struct{ J b14JSONPtr } `json:"nested"`
	Map    map[string]int         `json:"map"`
	TMap   map[b14Text]int        `json:"tmap"`
	Any    any                    `json:"any"`
	Arr    [3]int                 `json:"arr"`
	Bytes4 [4]byte                `json:"bytes4"`
	Bytes  []byte                 `json:"bytes"`
	Num    json.Number            `json:"num"`
	Raw    json.RawMessage        `json:"raw"`
	Time   time.Time              `json:"time"`
	Big    *big.Int               `json:"big"`
	BigV   big.Int                `json:"bigv"`
	Str    int                    `json:"str,string"`
	Plain  b14Plain               `json:"plain"`
}

// b14Inputs are payloads for both types: good ones, ones with a type error
// midway, syntax errors, and every corner the brief names.
var b14Inputs = []string{
	`{"id":1,"name":"a","ok":true,"f32":0.1,"f64":-0,"u8":255,"i64":-9223372036854775808}`,
	`{"in":{"x":"a","n":-32768,"l":[1,-128],"p":4294967295},"pin":{"x":"b"},"list":[{"x":"c"},null,{"l":[]}]}`,
	`{"words":[["a"],[],null],"ps":["x"],"ptrs":[1,null,2],"dur":-5,"anon":{"Z":"z","z":"y"}}`,
	`{"\u212aelvin":"kelvin sign","Kelvin":"ascii"}`, "{\"\u212aelvin\":\"raw kelvin sign\"}",
	"{\"\u017f\":\"long s\"}", `{"\u017f":"long s escaped"}`, `{"S":"upper"}`, `{"\u0069d":7}`, `{"":1}`,
	`{"id":1,"ID":2,"Id":3}`, `{"NAME":"x","name":"y"}`, `{"skip":5}`, `{"Skip":5}`,
	`{"id":1e2}`, `{"id":1.0}`, `{"id":-0}`, `{"u8":-0}`, `{"u8":256}`, `{"f32":3.5e38}`, `{"f64":1e400}`,
	`{"f32":1.40129846e-45}`, `{"f64":0e0}`, `{"f64":1E+2}`, `{"id":01}`, `{"i64":9223372036854775808}`,
	`{"name":"\/\b\f\u2028\u0000"}`, `{"name":"\ud83d"}`, `{"name":"\ud83d\ude00"}`, "{\"name\":\"\xff\"}",
	"{\"name\":\"a\x00\"}", `{"name":1}`, `{"ok":"true"}`, `{"in":[]}`, `{"list":{}}`,
	`{"in":{"x":"1"},"in":{"n":2}}`, `{"list":[{"x":"1"}],"list":[{"n":2}]}`, `{"pin":null,"pin":{"x":"1"}}`,
	`{"pin":{"x":"1"},"pin":null}`, `{"ps":["a"],"ps":null}`, `{"ptrs":[1],"ptrs":[null,3]}`,
	"\v{}", "{}\v", "\u00a0{}", "\ufeff{}", `{} x`, `{}}`, `{"id":1}]`, `{"id":1,}`, `nul`, ``, ` `,
	`null`, `[]`, `"x"`, `1`, `{"zz":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
	`{"zz":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"words":[` + strings.Repeat(`["a","b"],`, 3000) + `[]]}`,
	// special types
	`{"text":"t","textp":"p","texts":["a","b"],"jp":[1,2],"jps":[{},"x"],"nested":{"J":{"a":1}}}`,
	`{"jv":{"N":1},"jvs":[1,"x",null],"jvp":{"N":2}}`, `{"jv":"err"}`, `{"jvs":["err"]}`, `{"jvp":"err"}`,
	`{"jvp":null}`, `{"text":"bad"}`, `{"text":1}`, `{"textp":null}`, `{"texts":[null]}`,
	`{"map":{"a":1,"b":2},"tmap":{"k":1},"any":{"a":[1,"x",null,true]},"arr":[1,2],"bytes4":[1,2,3,4,5]}`,
	`{"arr":[1,2,3,4]}`, `{"map":{"a":"x"}}`, `{"map":null}`, `{"bytes":"AQID","bytes4":"AQID"}`,
	`{"bytes":"!!"}`, `{"bytes":[1,2]}`, `{"bytes":null}`, `{"num":12.5e3,"raw":{"r":[1]}}`, `{"num":"x"}`,
	`{"num":"12"}`, `{"raw":null}`, `{"time":"2020-01-02T03:04:05Z"}`, `{"time":"x"}`, `{"time":null}`,
	`{"big":123456789012345678901234567890,"bigv":-5}`, `{"big":"5"}`, `{"big":1.5}`, `{"big":null}`,
	`{"str":"5"}`, `{"str":5}`, `{"str":"x"}`, `{"str":null}`, `{"str":"null"}`,
	`{"plain":{"id":1,"name":"x"},"plain":{"in":{"x":"y"}}}`, `{"plain":{"id":"x"}}`,
}

// b14Diff reports how decodeTyped[T](data) differs from json.Unmarshal:
// the value, the error (its type and fields), or memory shared with data.
// T may be any type, an interface type included (compared as the variable
// holding it, nil or not).
func b14Diff[T any](data []byte) error {
	in := append([]byte(nil), data...)
	got, gerr := decodeTyped[T](in)
	for i := range in {
		in[i] = '#'
	}
	var want T
	werr := json.Unmarshal(data, &want)
	if !reflect.DeepEqual(werr, gerr) || fmt.Sprint(werr) != fmt.Sprint(gerr) {
		return fmt.Errorf("%v, payload %.200q: error %#v, json.Unmarshal's %#v", reflect.TypeFor[T](), data, gerr, werr)
	}
	if !jsonplantest.Same(reflect.ValueOf(&want).Elem(), reflect.ValueOf(&got).Elem()) {
		return fmt.Errorf("%v, payload %.200q:\n got %#v\nwant %#v", reflect.TypeFor[T](), data, got, want)
	}
	return nil
}

func b14Decode[T any](t *testing.T, data []byte) {
	t.Helper()
	if err := b14Diff[T](data); err != nil {
		t.Fatal(err)
	}
}

// TestBreak14DecodeTyped runs every input against both types, twice (the
// second time through warm pools), and requires the plan only for the
// plain one.
func TestBreak14DecodeTyped(t *testing.T) {
	require.Nil(t, jsonplan.For(reflect.TypeFor[b14Special]()), "b14Special has none")
	if b14JSONv2 {
		require.Nil(t, jsonplan.For(reflect.TypeFor[b14Plain]()), "no plan on encoding/json/v2")
	} else {
		require.NotNil(t, jsonplan.For(reflect.TypeFor[b14Plain]()), "b14Plain has a plan")
		var probe b14Plain
		require.True(t, jsonplan.For(reflect.TypeFor[b14Plain]()).Decode([]byte(b14Inputs[1]), unsafe.Pointer(&probe)),
			"the plan takes %q", b14Inputs[1])
	}
	for range 2 {
		for _, in := range b14Inputs {
			b14Decode[b14Plain](t, []byte(in))
			b14Decode[b14Special](t, []byte(in))
			b14Decode[b14Inner](t, []byte(in))
		}
	}
}

// b14G is instantiated with many type pairs: each instantiation is a type
// decodeTyped and jsonplan.For see for the first time.
type b14G[A, B any] struct {
	X  A       `json:"x"`
	Y  []B     `json:"y"`
	P  *A      `json:"p"`
	Q  B       `json:"Q"`
	In b14H[B] `json:"in"`
}

type b14H[B any] struct {
	V B `json:"v"`
}

func b14Row[A any](fs *[]func([]byte) error) {
	*fs = append(*fs,
		b14Diff[b14G[A, int8]], b14Diff[b14G[A, uint16]], b14Diff[b14G[A, string]],
		b14Diff[b14G[A, float32]], b14Diff[b14G[A, bool]], b14Diff[b14G[A, b14Name]],
		b14Diff[b14G[A, b14Inner]], b14Diff[b14G[A, time.Duration]], b14Diff[b14G[A, b14Text]],
		b14Diff[b14G[A, json.Number]],
	)
}

// TestBreak14DecodeTypedFirstUseConcurrent: 100 types, each decoded for
// the first time by 8 goroutines at once (under -race: the plan cache and
// the type decoders' cache), every result json.Unmarshal's.
func TestBreak14DecodeTypedFirstUseConcurrent(t *testing.T) {
	var fs []func([]byte) error
	b14Row[int8](&fs)
	b14Row[uint16](&fs)
	b14Row[string](&fs)
	b14Row[float32](&fs)
	b14Row[bool](&fs)
	b14Row[b14Name](&fs)
	b14Row[b14Inner](&fs)
	b14Row[time.Duration](&fs)
	b14Row[b14Text](&fs)
	b14Row[json.Number](&fs)
	payloads := [][]byte{
		[]byte(`{"x":1,"y":[1,2],"p":3,"Q":4,"in":{"v":5}}`),
		[]byte(`{"x":"a","y":["b"],"p":"c","q":"d","in":{"v":"e"}}`),
		[]byte(`{"x":true,"y":[false],"P":null,"Q":true,"IN":{"V":true}}`),
		[]byte(`{"x":{"x":"a","n":1},"y":[{"l":[1]}],"p":{"p":1},"Q":{},"in":{"v":{"x":"z"}}}`),
		[]byte(`{"x":0.1,"y":[1e39],"p":-0,"Q":1.5,"in":{"v":-1}}`),
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range fs {
				f := fs[(i+g*13)%len(fs)]
				for _, p := range payloads {
					if err := f(p); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
}

// b14BadTags has tag names encoding/json v1 ignores (the Go name counts)
// and encoding/json built on v2 (GOEXPERIMENT=jsonv2) does not.
type b14BadTags struct {
	//lint:ignore SA5008 a tag v1 ignores (the Go name counts), on purpose
	Bad  string `json:"a\\b"`
	NBSP int    `json:"\u00a0"`
	//lint:ignore SA5008 a tag v1 ignores (the Go name counts), on purpose
	Quote int `json:"x\""`
}

// TestBreak14DecodeTypedBadTags: decodeTyped follows json.Unmarshal's
// naming, whichever encoding/json the binary is built with.
func TestBreak14DecodeTypedBadTags(t *testing.T) {
	for _, in := range []string{
		`{"a":"x"}`, `{"Bad":"x"}`, `{"a\\b":"x"}`, `{"NBSP":1}`, "{\"\u00a0\":1}", `{"Quote":1}`, `{"x":1}`,
	} {
		b14Decode[b14BadTags](t, []byte(in))
	}
}
