//go:build !goexperiment.jsonv2

// The plan's tests: encoding/json v1's rules, which the plan copies (built
// with GOEXPERIMENT=jsonv2, no type gets a plan: break14_jsonv2_test.go).

package jsonplan

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The break-it pass's targeted cases: the corners the generator reaches
// only by chance, each against json.Unmarshal.

type b14Elem struct {
	A string `json:"a"`
	B []int8 `json:"b"`
}

type b14Growth struct {
	I8   []int8            `json:"i8"`
	S    []string          `json:"s"`
	E    []b14Elem         `json:"e"`
	P    []*int            `json:"p"`
	SS   [][]int           `json:"ss"`
	Z    []struct{}        `json:"z"`
	F    []float32         `json:"f"`
	PE   *[]b14Elem        `json:"pe"`
	PP   []*b14Elem        `json:"pp"`
	Deep [][][]uint8Kind16 `json:"deep"`
}

type uint8Kind16 uint16

// b14Kelvin's names are ASCII k and s: encoding/json matches the Kelvin
// sign and the long s to them, the plan must leave such keys alone.
type b14Kelvin struct {
	K    string `json:"k"`
	S    string `json:"s"`
	Kind string `json:"kind"`
	Sk   string `json:"sk"`
}

// b14NullEverywhere: null in every position the plan decodes.
type b14NullEverywhere struct {
	S  string     `json:"s"`
	B  bool       `json:"b"`
	I  int        `json:"i"`
	U  uint       `json:"u"`
	F  float64    `json:"f"`
	N  b14Elem    `json:"n"`
	L  []b14Elem  `json:"l"`
	P  *b14Elem   `json:"p"`
	PL *[]int     `json:"pl"`
	LP []*string  `json:"lp"`
	LL [][]string `json:"ll"`
}

func b14Run[T any](t *testing.T, in string) bool {
	t.Helper()
	typ := reflect.TypeFor[T]()
	p := For(typ)
	require.NotNil(t, p, "%v has a plan", typ)
	return b14Check(t, typ, p, []byte(in))
}

// TestBreak14SliceGrowth: arrays of every length up to 70, for element
// types of several sizes, decode with json.Unmarshal's length and
// capacity; a slice key given twice (or after null, or inside a repeated
// pointer) too.
func TestBreak14SliceGrowth(t *testing.T) {
	taken := 0
	for n := range 71 {
		var ints, strs, elems, ptrs, ss, zs, fs, deep []string
		for i := range n {
			ints = append(ints, strconv.Itoa(i%256-128))
			strs = append(strs, strconv.Quote(strings.Repeat("x", i)))
			elems = append(elems, `{"a":"`+strconv.Itoa(i)+`","b":[`+strings.Join(ints, ",")+`]}`)
			if i%3 == 0 {
				ptrs = append(ptrs, "null")
			} else {
				ptrs = append(ptrs, strconv.Itoa(i))
			}
			ss = append(ss, "["+strings.Repeat("1,", i%5)+"2]")
			zs = append(zs, "{}")
			fs = append(fs, strconv.Itoa(i)+".1e-3")
			deep = append(deep, "[[1],[],null,["+strconv.Itoa(i)+"]]")
		}
		j := func(s []string) string { return "[" + strings.Join(s, ",") + "]" }
		doc := `{"i8":` + j(ints) + `,"s":` + j(strs) + `,"e":` + j(elems) + `,"p":` + j(ptrs) +
			`,"ss":` + j(ss) + `,"z":` + j(zs) + `,"f":` + j(fs) + `,"pe":` + j(elems) + `,"pp":` + j(elems) +
			`,"deep":` + j(deep) + `}`
		for _, in := range []string{
			doc,
			`{"i8":null,"i8":` + j(ints) + `}`,
			`{"i8":` + j(ints) + `,"i8":null}`,
			`{"i8":` + j(ints) + `,"i8":[5]}`,
			`{"pe":` + j(elems) + `,"pe":` + j(elems) + `}`,
			`{"pe":null,"pe":` + j(elems) + `}`,
			`{"e":` + j(elems) + `,"E":[]}`,
		} {
			if b14Run[b14Growth](t, in) {
				taken++
			}
		}
	}
	require.Greater(t, taken, 71*3, "the plan took the fresh slices")
}

// TestBreak14Keys: Kelvin sign and long s (raw and escaped), escaped keys,
// the empty key, repeated keys across case variants.
func TestBreak14Keys(t *testing.T) {
	refuse := []string{
		"{\"\u212a\":\"kelvin\"}", `{"\u212a":"kelvin"}`, "{\"\u017f\":\"long s\"}", `{"\u017F":"long s"}`,
		"{\"\u212aind\":\"x\"}", "{\"\u017f\u212a\":\"x\"}", `{"\u006b":"escaped k"}`, `{"k\u0000":1}`,
		`{"k":"a","\u004b":"b"}`,
	}
	for _, in := range refuse {
		require.False(t, b14Run[b14Kelvin](t, in), "the plan leaves %q to encoding/json", in)
	}
	take := []string{
		`{"k":"a","K":"b"}`, `{"K":"b","k":"a"}`, `{"KIND":"x","kind":"y","Kind":"z"}`, `{"":1,"k":"x"}`,
		`{"sK":"1","SK":"2","Sk":"3"}`, `{"s":"1","S":null}`, `{"ks":"unknown"}`, `{"k ":"unknown","k":"x"}`,
	}
	for _, in := range take {
		require.True(t, b14Run[b14Kelvin](t, in), "the plan takes %q", in)
	}
}

// TestBreak14Nulls: null in every position, before and after a value.
func TestBreak14Nulls(t *testing.T) {
	keys := []string{"s", "b", "i", "u", "f", "n", "l", "p", "pl", "lp", "ll"}
	vals := map[string]string{
		"s": `"x"`, "b": `true`, "i": `-1`, "u": `1`, "f": `-0`, "n": `{"a":"x","b":[1]}`,
		"l": `[{"a":"y"},null]`, "p": `{"a":"z","b":null}`, "pl": `[1,2]`, "lp": `["a",null,"b"]`,
		"ll": `[["a"],null,[]]`,
	}
	for _, k := range keys {
		for _, in := range []string{
			`{"` + k + `":null}`,
			`{"` + k + `":` + vals[k] + `,"` + k + `":null}`,
			`{"` + k + `":null,"` + k + `":` + vals[k] + `}`,
			`{"` + k + `":` + vals[k] + `,"` + strings.ToUpper(k) + `":null}`,
		} {
			require.True(t, b14Run[b14NullEverywhere](t, in), "the plan takes %q", in)
		}
	}
	require.True(t, b14Run[b14NullEverywhere](t, `{"n":{"a":null,"b":null},"l":[{"a":null}],"lp":[null],"ll":[null]}`))
}

// TestBreak14Long: long strings, long arrays, many keys, deep unknown
// values at the skip depth's edge.
func TestBreak14Long(t *testing.T) {
	long := strings.Repeat("é€😀a\\n", 50000)
	require.True(t, b14Run[b14NullEverywhere](t, `{"s":"`+long+`"}`))
	require.True(t, b14Run[b14Growth](t, `{"i8":[`+strings.Repeat("1,", 200000)+`1]}`))
	require.True(t, b14Run[b14NullEverywhere](t, `{`+strings.Repeat(`"zz":1,`, 50000)+`"i":2}`))
	for d := 28; d < 40; d++ {
		b14Run[b14NullEverywhere](t, `{"zz":`+strings.Repeat(`[{"a":`, d)+"1"+strings.Repeat(`}]`, d)+`}`)
		b14Run[b14NullEverywhere](t, `{"zz":`+strings.Repeat(`[`, d)+strings.Repeat(`]`, d)+`}`)
	}
	b14Run[b14NullEverywhere](t, `{"zz":`+strings.Repeat(`[`, 10001)+strings.Repeat(`]`, 10001)+`}`)
	b14Run[b14NullEverywhere](t, `{"zz":`+strings.Repeat(`[`, 100000)+`}`)
}

// TestBreak14ForConcurrent: 16 goroutines take 300 new types' plans for
// the first time at once, in different orders; every type gets one plan,
// and every plan's decodes are json.Unmarshal's.
func TestBreak14ForConcurrent(t *testing.T) {
	g := &b14Gen{r: rand.New(rand.NewPCG(14, 14))}
	var types []reflect.Type
	for len(types) < 300 {
		func() {
			defer func() { _ = recover() }()
			types = append(types, g.structType(3))
		}()
	}
	docs := make([][][]byte, len(types))
	for i, typ := range types {
		for range 20 {
			docs[i] = append(docs[i], g.doc(typ))
		}
	}
	plans := make([][]*Plan, 16)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range plans {
		plans[w] = make([]*Plan, len(types))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := range types {
				i := (k*7 + w*31) % len(types)
				p := For(types[i])
				plans[w][i] = p
				if p == nil {
					continue
				}
				for _, d := range docs[i] {
					if _, err := b14Diff(types[i], p, d); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range types {
		for w := range plans {
			require.Same(t, plans[0][i], plans[w][i], "one plan for %v", types[i])
		}
	}
}

// FuzzBreak14Typed: a random struct type from seed, the fuzzer's bytes as
// its payload. Seeds are generated documents for their seed's type.
func FuzzBreak14Typed(f *testing.F) {
	for seed := range uint64(40) {
		g := &b14Gen{r: rand.New(rand.NewPCG(seed, 14))}
		typ := b14FuzzType(seed)
		if typ == nil {
			continue
		}
		for range 5 {
			f.Add(seed, g.doc(typ))
		}
	}
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		typ := b14FuzzType(seed % 4096)
		if typ == nil {
			return
		}
		if p := For(typ); p != nil {
			b14Check(t, typ, p, data)
		}
	})
}

// b14FuzzType is the random struct type of seed (nil when StructOf refuses
// the fields drawn).
func b14FuzzType(seed uint64) (typ reflect.Type) {
	defer func() {
		if recover() != nil {
			typ = nil
		}
	}()
	g := &b14Gen{r: rand.New(rand.NewPCG(seed, 41))}
	return g.structType(3)
}

// TestBreak14ASCIIKeys: a field named by each printable ASCII character
// (through its tag: valid tag names, and invalid ones that fall back to
// the Go name), or by a letter and that character, against a key of each
// character from 0x20 to 0x7f: the plan matches exactly what
// encoding/json's exact and folded lookups match.
func TestBreak14ASCIIKeys(t *testing.T) {
	taken := 0
	for a := byte(0x20); a < 0x7f; a++ {
		for _, name := range []string{string(a), "x" + string(a), string(a) + "Q"} {
			typ := reflect.StructOf([]reflect.StructField{
				{Name: "F", Type: reflect.TypeFor[int](), Tag: reflect.StructTag(`json:` + strconv.Quote(name))},
				{Name: "G", Type: reflect.TypeFor[int]()},
			})
			p := For(typ)
			if p == nil {
				continue // the names fold alike: encoding/json's alone
			}
			for b := byte(0x20); b < 0x80; b++ {
				if b == '"' || b == '\\' {
					continue
				}
				for _, key := range []string{string(b), "x" + string(b), "X" + string(b), string(b) + "Q", string(b) + "q"} {
					doc := `{"G":1,"F":2,"` + key + `":3}`
					if b14Check(t, typ, p, []byte(doc)) {
						taken++
					}
				}
			}
		}
	}
	require.Greater(t, taken, 10000)
}

// Built with GOEXPERIMENT=jsonv2, encoding/json is encoding/json/v2 in v1
// mode, and its rules are not the ones the plan copies: a tag name that v1
// ignores for being invalid (`json:"a\\b"`, `json:"\u00a0"`, `json:"x\""`)
// names the field there, so a key the plan takes for the Go name (or for
// no field) decodes elsewhere, or fails. Whatever encoding/json is built
// on, what the plan takes must be json.Unmarshal's.

type b14BadTags struct {
	//lint:ignore SA5008 a tag v1 ignores (the Go name counts), on purpose
	Bad  string `json:"a\\b"`
	NBSP int    `json:"\u00a0"`
	//lint:ignore SA5008 a tag v1 ignores (the Go name counts), on purpose
	Quote int `json:"x\""`
}

func TestBreak14InvalidTagNames(t *testing.T) {
	typ := reflect.TypeFor[b14BadTags]()
	p := For(typ)
	if p == nil {
		return // no plan: encoding/json decodes every payload
	}
	for _, in := range []string{
		`{"a":"x"}`, `{"Bad":"x"}`, `{"a\\b":"x"}`, `{"NBSP":1}`, "{\"\u00a0\":1}", `{"Quote":1}`, `{"x":1}`,
	} {
		b14Check(t, typ, p, []byte(in))
	}
}
