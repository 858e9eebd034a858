//go:build !goexperiment.jsonv2

// The plan's tests: encoding/json v1's rules, which the plan copies (built
// with GOEXPERIMENT=jsonv2, no type gets a plan: break14_jsonv2_test.go).

package jsonplan

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/jsonplan/jsonplantest"
)

// The differential check: for each target type, a payload the plan takes
// must decode to exactly what json.Unmarshal makes of it, without error.

type fzFlat struct {
	ID   int     `json:"id"`
	Name string  `json:"name"`
	OK   bool    `json:"ok"`
	F    float64 `json:"f"`
}

type fzScalars struct {
	I   int
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	U   uint
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	UP  uintptr
	F32 float32
	F64 float64
	S   string
	B   bool
}

type fzInner struct {
	X string `json:"x"`
	N int16  `json:"n"`
}

type fzNested struct {
	A    fzInner `json:"a"`
	B    fzInner `json:"b,omitempty"`
	N    int     `json:"n"`
	Deep struct {
		X string `json:"x"`
		Y struct {
			Z int8
		} `json:"y"`
	} `json:"deep"`
}

type fzTags struct {
	Skip string `json:"-"`
	//lint:ignore SA5008 the name "-", as encoding/json reads it
	Dash  string `json:"-,"`
	Empty string `json:",omitempty"`
	Named string `json:"renamed"`
	Punct string `json:"a-b.c"`
	//lint:ignore SA5008 a tag encoding/json ignores, on purpose
	Bad string `json:"a\\b"` // invalid tag name: the Go name counts
	//lint:ignore SA5008 a tag encoding/json ignores, on purpose
	Quote string `json:"q\"q"` // likewise
	NBSP  string `json:"x\u00a0"`
	Space string `json:"with space"`
	K     string `json:"k"`  // the Kelvin sign folds to K
	S     string `json:"ss"` // ſ folds to S
	Opts  int    `json:"opts,omitempty,omitzero"`
	//lint:ignore SA5008 a tag encoding/json ignores, on purpose
	Other string `json:",,"`
	//lint:ignore U1000 present to show that a key naming it is unknown
	unexp string
}

type fzCase struct {
	UserID   int    `json:"userId"`
	NAME     string // matched by "name", "Name", ...
	MixedKey bool   `json:"mIxEd"`
}

type fzSlices struct {
	Tags   []string  `json:"tags"`
	Ints   []int32   `json:"ints"`
	Floats []float32 `json:"floats"`
	Inner  []fzInner `json:"inner"`
	Nested [][]bool  `json:"nested"`
	Uints  []uint16  `json:"uints"`
}

type fzPointers struct {
	N     *int        `json:"n"`
	S     *string     `json:"s"`
	In    *fzInner    `json:"in"`
	List  *[]string   `json:"list"`
	Elems []*fzInner  `json:"elems"`
	F     *float64    `json:"f"`
	Deep  *fzPointers `json:"-"`
}

// fzOdd holds the corner kinds: zero-size values, named scalars, a
// duration (an int64 with methods, none of them decoding).
type fzOdd struct {
	E     struct{}      `json:"e"`
	L     []struct{}    `json:"l"`
	P     *struct{}     `json:"p"`
	Named textLike      `json:"named"`
	Flag  flag          `json:"flag"`
	Dur   time.Duration `json:"dur"`
	PS    *[]string     `json:"ps"`
	_     int
}

// targets are the types the differential tests run every payload against.
var targets = []struct {
	name  string
	check func(t *testing.T, data []byte) bool
}{
	{"flat", checkPlan[fzFlat]},
	{"scalars", checkPlan[fzScalars]},
	{"nested", checkPlan[fzNested]},
	{"tags", checkPlan[fzTags]},
	{"case", checkPlan[fzCase]},
	{"slices", checkPlan[fzSlices]},
	{"pointers", checkPlan[fzPointers]},
	{"odd", checkPlan[fzOdd]},
}

// checkPlan decodes data with T's plan and, when the plan takes it,
// requires json.Unmarshal's result and no error from json.Unmarshal. It
// then overwrites data to show the result does not alias it. It reports
// whether the plan took data.
func checkPlan[T any](t *testing.T, data []byte) bool {
	t.Helper()
	p := For(reflect.TypeFor[T]())
	require.NotNil(t, p, "%T has a plan", *new(T))
	in := append([]byte(nil), data...)
	var got T
	if !p.Decode(in, unsafe.Pointer(&got)) {
		return false
	}
	var want T
	err := json.Unmarshal(data, &want)
	require.NoError(t, err, "the plan took %q, which json.Unmarshal rejects", data)
	for i := range in {
		in[i] = '#'
	}
	requireSame(t, want, got, data)
	return true
}

// requireSame requires want and got equal, floats bit for bit (-0 is not
// 0), slices with their capacity.
func requireSame(t *testing.T, want, got any, data []byte) {
	t.Helper()
	if !jsonplantest.Same(reflect.ValueOf(want), reflect.ValueOf(got)) {
		t.Fatalf("payload %q:\n got %#v\nwant %#v", data, got, want)
	}
}

// seeds are payloads at the edges of what the plan takes: the fuzz
// targets start from them, TestSeeds runs them all.
var seeds = []string{
	`{"id":1,"name":"report"}`,
	`{"id":1,"name":"report","ok":true,"f":1.5}`,
	" \t\r\n{ \"id\" : 1 , \"name\" : \"x\" } \n",
	`{}`, `{ }`, `null`, ` null `, `nul`, `nullx`, `{}x`, `{} {}`, `{}}`, `{"id":1}]`,
	``, ` `, `[]`, `"s"`, `1`, `true`, `{`, `{"id"`, `{"id":`, `{"id":1`, `{"id":1,}`, `{,}`,
	// numbers
	`{"id":-0}`, `{"f":-0}`, `{"f":-0.0}`, `{"f":0e0}`, `{"id":1e2}`, `{"id":1.0}`, `{"id":1E2}`,
	`{"id":01}`, `{"id":-}`, `{"id":+1}`, `{"id":.5}`, `{"f":1.}`, `{"f":1e}`, `{"f":1e+}`, `{"f":1e-5}`,
	`{"id":9223372036854775807}`, `{"id":9223372036854775808}`, `{"id":-9223372036854775808}`,
	`{"id":-9223372036854775809}`, `{"id":18446744073709551616}`, `{"id":99999999999999999999999}`,
	`{"I8":127,"I16":-32768,"U8":255,"U16":65535,"U32":4294967295,"U64":18446744073709551615,"UP":1}`,
	`{"I8":128}`, `{"I8":-129}`, `{"U8":256}`, `{"U":-0}`, `{"U":-1}`, `{"I32":2147483648}`,
	`{"F32":3.4028235e38}`, `{"F32":3.5e38}`, `{"F64":1e309}`, `{"F64":1e-400}`, `{"F32":1e-50}`,
	`{"F32":0.1}`, `{"F64":0.1}`, `{"F64":123456789012345678901234567890}`, `{"F64":0x10}`,
	`{"F64":Infinity}`, `{"F64":NaN}`, `{"F64":1_0}`, `{"I":1_0}`,
	// strings
	`{"name":"a\"b\\c\/d\b\f\n\r\t"}`, `{"name":"\u00e9\u4e16"}`, `{"name":"\ud83d\ude00"}`,
	`{"name":"\ud83d"}`, `{"name":"\ude00"}`, `{"name":"\ud83d\u0041"}`, `{"name":"\ud83dx"}`,
	`{"name":"\ud83d\ud83d"}`, `{"name":"\u12"}`, `{"name":"\uzzzz"}`, `{"name":"\x"}`, `{"name":"\'"}`,
	`{"name":"\u0000"}`, "{\"name\":\"\x00\"}", "{\"name\":\"\x1f\"}", "{\"name\":\"\x7f\"}",
	"{\"name\":\"\xff\"}", "{\"name\":\"\xed\xa0\x80\"}", "{\"name\":\"\xef\xbf\xbd\"}",
	"{\"name\":\"é世😀\"}", "{\"name\":\"\xc3\"}", `{"name":"` + strings.Repeat(`\n`, 200) + `"}`,
	`{"name":"` + strings.Repeat("é", 100) + `\t"}`, `{"name":""}`, `{"name":"\""}`,
	`{"name":1}`, `{"name":true}`, `{"name":{}}`, `{"name":[]}`, `{"name":null}`, `{"S":"x","S":null}`,
	// bools
	`{"ok":true}`, `{"ok":false}`, `{"ok":tru}`, `{"ok":truex}`, `{"ok":"true"}`, `{"ok":1}`, `{"ok":null}`,
	// keys: duplicates, case folding, escapes, unknown
	`{"id":1,"id":2}`, `{"id":1,"ID":2}`, `{"ID":3}`, `{"Id":3,"iD":4}`, `{"NAME":"x","name":"y"}`,
	`{"UserId":1,"userid":2,"USERID":3}`, `{"nAmE":"z"}`, `{"mixed":true}`, `{"MIXED":true}`,
	`{"\u0069d":5}`, `{"i\"d":5}`, `{"K":"kelvin"}`, `{"k":"k"}`, "{\"\u212a\":\"kelvin\"}",
	"{\"\u017fs\":\"long s\"}", `{"SS":"x"}`, `{"Skip":"x","-":"dash","Empty":"e"}`,
	`{"renamed":"r","Named":"n"}`, `{"a-b.c":"p","Bad":"b","a\\b":"x","Quote":"q","NBSP":"n"}`,
	`{"with space":"s","WITH SPACE":"t","Opts":1,"Other":"o","unexp":"u"}`,
	`{"zz":1}`, `{"zz":[1,"a",{"b":[null,true,false]}],"id":2}`, `{"zz":{"a":{"b":{"c":{}}}}}`,
	`{"zz":"\ud83d"}`, "{\"zz\":\"\xff\"}", "{\"zz\":\"\x01\"}", `{"zz":[1,]}`, `{"zz":{"a"}}`,
	`{"zz":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`, `{"zz":01}`, `{"zz":-}`,
	`{"zz":{"a":1,"a":2}}`, `{"zz":nul}`, `{"zz":[1 2]}`, `{"zz":{"a":1 "b":2}}`, `{"zz":"\q"}`,
	// nested
	`{"a":{"x":"1","n":2},"b":{"x":"3"},"n":4,"deep":{"x":"d","y":{"Z":5}}}`,
	`{"a":{"x":"1"},"a":{"n":2}}`, `{"a":{"x":"1"},"a":null}`, `{"a":null}`, `{"deep":{"y":null}}`,
	`{"a":[]}`, `{"a":1}`, `{"a":"x"}`, `{"a":{"x":1}}`, `{"deep":{"y":{"z":-128}}}`, `{"deep":{"y":{"Z":128}}}`,
	`{"A":{"X":"upper"}}`, `{"a":{"zz":{"q":[]}}}`,
	// slices
	`{"tags":["a","b"],"ints":[1,-2],"floats":[0.1,-0],"inner":[{"x":"1"},{"n":2}],"nested":[[true],[],null]}`,
	`{"tags":[]}`, `{"tags":null}`, `{"tags":["a"],"tags":null}`, `{"tags":["a"],"tags":["b"]}`,
	`{"tags":[],"tags":["b"]}`, `{"tags":null,"tags":["b"]}`, `{"tags":[null,"x"]}`, `{"tags":[1]}`,
	`{"tags":["a",]}`, `{"tags":[,]}`, `{"tags":["a" "b"]}`, `{"tags":"a"}`, `{"tags":{}}`, `{"tags":[`,
	`{"ints":[2147483648]}`, `{"uints":[-1]}`, `{"inner":[null,{"x":"y"}]}`, `{"inner":[{"x":"1","x":"2"}]}`,
	`{"nested":[[true,false],[null]]}`, `{"floats":[1e39]}`, `{"ints":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}`,
	// pointers
	`{"n":1,"s":"x","in":{"x":"y"},"list":["a"],"elems":[{"n":1},null],"f":-0}`,
	`{"n":null}`, `{"n":1,"n":null}`, `{"n":null,"n":2}`, `{"n":1,"n":2}`, `{"in":{"x":"1"},"in":{"n":2}}`,
	`{"in":{"x":"1"},"in":null}`, `{"list":["a"],"list":["b"]}`, `{"list":null}`, `{"list":[]}`,
	`{"e":{},"l":[{},{},{}],"p":{},"named":"n","flag":true,"dur":-5,"ps":["a"]}`, `{"e":{"a":1},"l":[{"x":[]}]}`,
	`{"l":[null,{}],"p":null,"ps":null}`, `{"p":{},"p":{}}`, `{"l":[{}],"l":[{}]}`, `{"_":1,"e":null}`,
	// the break-it pass
	`{"f":-0.0e+0}`, `{"F32":1.40129846e-45}`, `{"F32":7e-46}`, `{"F32":7.1e-46}`, `{"F64":4.9e-324}`,
	`{"F64":2.4703282292062328e-324}`, `{"F32":3.4028235677973366e38}`, `{"F32":3.4028235677973367e38}`,
	`{"I8":-0}`, `{"id":1 2}`, `{"id" :1}`, "{\"id\":1}\f", "\v{}", "\ufeff{}", `{"name":"\u0022\u005c"}`,
	`{"` + strings.Repeat("k", 300) + `":1,"id":2}`, `{"ID\u0000":1}`, `{"id\u0000":1}`, `{"i` + "\x00" + `d":1}`,
	`{"name":"a` + "\u2028\u2029" + `b"}`, `{"deep":{"y":{"Z":1},"y":{"z":2}}}`, `{"a":{"x":"1"},"A":{"X":"2"}}`,
	`{"in":{"x":"1"},"in":null,"in":{"n":2}}`, `{"elems":[{"x":"1"},{"x":"2"}],"elems":null}`,
	`{"f":1E400}`, `{"f":-1e-400}`, `{"id":-00}`, `{"id":0.0}`, `{"id":-}`, `{"tags":["\ud800\udc00"]}`,
	`{"n":1,"s":"x"}` + strings.Repeat(" ", 100),
	`{"n":"x"}`, `{"n":1.5}`, `{"s":null,"s":"a"}`, `{"elems":[]}`, `{"elems":[null]}`, `{"Deep":{}}`,
}

// TestSeeds runs every seed against every target, and checks that the
// plan takes the payloads it is meant for (a plan that never decodes would
// pass the differential check).
func TestSeeds(t *testing.T) {
	taken := 0
	for _, s := range seeds {
		for _, tg := range targets {
			if tg.check(t, []byte(s)) {
				taken++
			}
		}
	}
	t.Logf("%d of %d seed decodes taken by the plan", taken, len(seeds)*len(targets))

	mustTake := map[string]func(*testing.T, []byte) bool{
		`{"id":1,"name":"report"}`: checkPlan[fzFlat],
		`null`:                     checkPlan[fzFlat],
		`{"f":-0}`:                 checkPlan[fzFlat],
		`{"id":1,"id":2}`:          checkPlan[fzFlat],
		`{"ID":3}`:                 checkPlan[fzFlat],
		`{"zz":[1,"a",{"b":[null,true,false]}],"id":2}`: checkPlan[fzFlat],
		`{"name":"\ud83d\ude00\u00e9\n"}`:               checkPlan[fzFlat],
		"{\"name\":\"é世😀\"}":                            checkPlan[fzFlat],
		`{"U64":18446744073709551615,"I8":-128}`:        checkPlan[fzScalars],
		`{"F32":0.1,"F64":1e-400}`:                      checkPlan[fzScalars],
		`{"a":{"x":"1"},"a":{"n":2},"deep":null}`:       checkPlan[fzNested],
		`{"-":"d","Bad":"b","a-b.c":"p","Skip":"s"}`:    checkPlan[fzTags],
		`{"NAME":"x","name":"y","USERID":1}`:            checkPlan[fzCase],
	}
	for in, check := range mustTake {
		require.True(t, check(t, []byte(in)), "the plan takes %q", in)
	}
	mustRefuse := map[string]func(*testing.T, []byte) bool{
		`{"id":1e2}`:                  checkPlan[fzFlat],
		`{"id":1.0}`:                  checkPlan[fzFlat],
		`{"name":"\ud83d"}`:           checkPlan[fzFlat],
		"{\"name\":\"\xff\"}":         checkPlan[fzFlat],
		`{"\u0069d":5}`:               checkPlan[fzFlat],
		"{\"\u212a\":\"kelvin\"}":     checkPlan[fzTags],
		`{"U":-0}`:                    checkPlan[fzScalars],
		`{"F32":3.5e38}`:              checkPlan[fzScalars],
		`{"id":1} x`:                  checkPlan[fzFlat],
		`{"name":1}`:                  checkPlan[fzFlat],
		`{"zz":` + deep(40) + `}`:     checkPlan[fzFlat],
		`{"id":9223372036854775808}`:  checkPlan[fzFlat],
		`{"id":-9223372036854775809}`: checkPlan[fzFlat],
		`{"tags":["a"],"tags":["b"]}`: checkPlan[fzSlices],
	}
	for in, check := range mustRefuse {
		require.False(t, check(t, []byte(in)), "the plan leaves %q to encoding/json", in)
	}
}

func deep(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// FuzzPlanDecode: whatever the plan takes, json.Unmarshal decodes the same
// way without error, for every target type.
func FuzzPlanDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tg := range targets {
			tg.check(t, data)
		}
	})
}
