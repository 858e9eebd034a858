package rpc

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

type break7Inner struct {
	A int            `json:"a"`
	M map[string]int `json:"m"`
}

type break7Target struct {
	S    string          `json:"s"`
	N    *int            `json:"n"`
	L    []int           `json:"l"`
	M    map[string]any  `json:"m"`
	P    *break7Inner    `json:"p"`
	I    break7Inner     `json:"i"`
	Any  any             `json:"any"`
	Raw  json.RawMessage `json:"raw"`
	Arr  [3]int          `json:"arr"`
	B    []byte          `json:"b"`
	Num  json.Number     `json:"num"`
	F    float64         `json:"f"`
	Embd                 // promoted fields
}

type Embd struct {
	E string `json:"e"`
}

// checkSame decodes in with decodeTyped and with json.Unmarshal into a new
// value and requires the same value and the same error text.
func checkSame[T any](t *testing.T, in string) T {
	t.Helper()
	got, gerr := decodeTyped[T]([]byte(in))
	var want T
	werr := json.Unmarshal([]byte(in), &want)
	require.Equal(t, fmt.Sprint(werr), fmt.Sprint(gerr), "error for %q", in)
	require.True(t, reflect.DeepEqual(want, got), "value for %q:\n got %#v\nwant %#v", in, got, want)
	return got
}

// TestBreak7DecodeNoLeakBetweenCalls: a field absent from the next payload
// does not keep the last one's value, and nothing the decoded values point
// to is shared between calls, whatever decoded before (a good payload, a
// bad one, one cut short).
func TestBreak7DecodeNoLeakBetweenCalls(t *testing.T) {
	full := `{"s":"x","n":5,"l":[1,2,3],"m":{"k":[1]},"p":{"a":1,"m":{"z":1}},"i":{"a":2,"m":{"y":2}},"any":{"q":1},"raw":{"r":1},"arr":[1,2,3],"b":"aGk=","num":12.5,"f":1.5,"e":"emb"}`
	for round := range 50 {
		a := checkSame[break7Target](t, full)
		// What came before: nothing, an error, a type error midway.
		switch round % 3 {
		case 1:
			_, err := decodeTyped[break7Target]([]byte(`{"s":"y","l":[9,9],"n":"bad"}`))
			require.Error(t, err)
		case 2:
			_, err := decodeTyped[break7Target]([]byte(`{"s":"y","m":{"k":`))
			require.Error(t, err)
		}
		b := checkSame[break7Target](t, `{}`)
		require.Equal(t, break7Target{}, zeroRaw(b), "round %d: nothing of the last payload stays", round)
		c := checkSame[break7Target](t, full)
		// Mutating one call's result leaves the other's alone.
		*c.N, c.L[0], c.P.A, c.I.M["y"], c.B[0] = 99, 99, 99, 99, 'X'
		c.M["k"] = nil
		c.Raw[0] = ' '
		require.Equal(t, 5, *a.N)
		require.Equal(t, 1, a.L[0])
		require.Equal(t, 1, a.P.A)
		require.Equal(t, 2, a.I.M["y"])
		require.Equal(t, "hi", string(a.B))
		require.NotNil(t, a.M["k"])
		require.Equal(t, `{"r":1}`, string(a.Raw))
	}
}

func zeroRaw(v break7Target) break7Target { return v }

// keeper is an UnmarshalJSON that copies its input, as encoding/json
// requires of one that keeps it.
type keeper struct{ kept []byte }

func (k *keeper) UnmarshalJSON(b []byte) error { k.kept = append([]byte(nil), b...); return nil }

// TestBreak7DecodeDifferentialHostile compares decodeTyped with
// json.Unmarshal on payloads made of random JSON-ish pieces (valid and
// not), for several target types, each decoded in a mix with the others so
// that the pooled decoders see every kind of state.
func TestBreak7DecodeDifferentialHostile(t *testing.T) {
	pieces := []string{`{`, `}`, `[`, `]`, `,`, `:`, `"s"`, `"n"`, `"l"`, `"m"`, `"p"`, `"a"`, `"any"`, `"raw"`, `"num"`,
		`1`, `-0`, `1e400`, `1.5`, `-`, `0x1`, `01`, `"x"`, `"\u00e9"`, `"\ud800"`, `"\x"`, "\"\xff\"", `null`, `true`, `nul`,
		` `, "\n", "\t", `"`, `\`, `{}`, `[]`, `123456789012345678901234567890`, `"aGk="`, `"a=b"`}
	rng := rand.New(rand.NewPCG(7, 7))
	mk := func() string {
		var sb strings.Builder
		for range 1 + rng.IntN(14) {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	structured := func() string {
		// Mostly-valid objects with random fields and values.
		var sb strings.Builder
		sb.WriteString("{")
		for i := range rng.IntN(5) {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(pieces[6+rng.IntN(9)])
			sb.WriteString(":")
			sb.WriteString(pieces[15+rng.IntN(25)])
		}
		sb.WriteString("}")
		if rng.IntN(4) == 0 {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	for i := range 20000 {
		in := mk()
		if i%2 == 0 {
			in = structured()
		}
		switch i % 6 {
		case 0:
			checkSame[break7Target](t, in)
		case 1:
			checkSame[any](t, in)
		case 2:
			checkSame[map[string]int](t, in)
		case 3:
			checkSame[[]any](t, in)
		case 4:
			checkSame[keeper](t, in)
		case 5:
			checkSame[*break7Inner](t, in)
		}
	}
}

// TestBreak7DecodeConcurrent decodes many payloads from many goroutines
// (under -race) and checks each result against its payload.
func TestBreak7DecodeConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				n := g*100000 + i
				in := fmt.Sprintf(`{"s":"%d","l":[%d],"m":{"k":%d},"p":{"a":%d}}`, n, n, n, n)
				if i%7 == 0 {
					in = `{"s":` // an error now and then
					_, err := decodeTyped[break7Target]([]byte(in))
					if err == nil {
						t.Error("no error for a cut payload")
						return
					}
					continue
				}
				v, err := decodeTyped[break7Target]([]byte(in))
				if err != nil || v.S != fmt.Sprint(n) || len(v.L) != 1 || v.L[0] != n || v.M["k"] != float64(n) || v.P.A != n || v.N != nil {
					t.Errorf("payload %s decoded as %+v, %v", in, v, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
