//go:build !goexperiment.jsonv2

// The plan's tests: encoding/json v1's rules, which the plan copies (built
// with GOEXPERIMENT=jsonv2, no type gets a plan: break14_jsonv2_test.go).

package jsonplan

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGeneratedDocuments is the differential check over documents built
// from JSON's grammar with the targets' own keys (in every case), values at
// the edges of each kind and random whitespace: the byte-level fuzzer
// rarely assembles a whole object that names several fields at once.
func TestGeneratedDocuments(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := &docGen{r: rand.New(rand.NewPCG(seed, 11))}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	taken := 0
	for range n {
		doc := []byte(g.object(0))
		for _, tg := range targets {
			if tg.check(t, doc) {
				taken++
			}
		}
	}
	t.Logf("%d documents, %d of %d decodes taken by the plan", n, taken, n*len(targets))
}

type docGen struct{ r *rand.Rand }

var genKeys = []string{
	"id", "name", "ok", "f", "I", "I8", "I16", "I32", "I64", "U", "U8", "U16", "U32", "U64", "UP",
	"F32", "F64", "S", "B", "a", "b", "n", "deep", "x", "y", "Z", "-", "Empty", "renamed", "a-b.c",
	"Bad", "Quote", "NBSP", "with space", "k", "ss", "opts", "Other", "Skip", "unexp", "userId",
	"NAME", "mIxEd", "tags", "ints", "floats", "inner", "nested", "uints", "s", "in", "list", "elems",
	"Deep", "e", "l", "p", "named", "flag", "dur", "ps", "zz", "", "a\\b", "\\u0069d", "\u212a", "\u017fs", "é",
}

func (g *docGen) ws() string {
	if g.r.IntN(4) > 0 {
		return ""
	}
	return []string{" ", "\n", "\t", "\r\n ", "  "}[g.r.IntN(5)]
}

func (g *docGen) key() string {
	k := genKeys[g.r.IntN(len(genKeys))]
	switch g.r.IntN(4) {
	case 0:
		k = strings.ToUpper(k)
	case 1:
		b := []byte(k)
		for i := range b {
			if g.r.IntN(2) == 0 && b[i] >= 'a' && b[i] <= 'z' {
				b[i] -= 'a' - 'A'
			}
		}
		k = string(b)
	}
	return `"` + k + `"`
}

func (g *docGen) object(depth int) string {
	var b strings.Builder
	b.WriteString("{" + g.ws())
	for i := range g.r.IntN(6) {
		if i > 0 {
			b.WriteString("," + g.ws())
		}
		b.WriteString(g.key() + g.ws() + ":" + g.ws() + g.value(depth+1) + g.ws())
	}
	b.WriteString("}")
	if depth == 0 && g.r.IntN(50) == 0 {
		b.WriteString([]string{"x", "}", ",", "{}", "\x00"}[g.r.IntN(5)])
	}
	return g.ws() + b.String() + g.ws()
}

func (g *docGen) array(depth int) string {
	var b strings.Builder
	b.WriteString("[" + g.ws())
	for i := range g.r.IntN(5) {
		if i > 0 {
			b.WriteString("," + g.ws())
		}
		b.WriteString(g.value(depth+1) + g.ws())
	}
	return b.String() + "]"
}

func (g *docGen) value(depth int) string {
	switch c := g.r.IntN(12); {
	case depth < 4 && c == 0:
		return g.object(depth)
	case depth < 4 && c == 1:
		return g.array(depth)
	case c == 2:
		return "null"
	case c == 3:
		return []string{"true", "false"}[g.r.IntN(2)]
	case c <= 6:
		return g.number()
	default:
		return g.str()
	}
}

// number is an integer at or next to a bound of some integer kind, or a
// float in one of JSON's forms.
func (g *docGen) number() string {
	bounds := []string{"0", "-0", "1", "-1", "127", "128", "-128", "-129", "255", "256", "32767",
		"32768", "-32768", "-32769", "65535", "65536", "2147483647", "2147483648", "-2147483648",
		"-2147483649", "4294967295", "4294967296", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616"}
	switch g.r.IntN(4) {
	case 0:
		return bounds[g.r.IntN(len(bounds))]
	case 1:
		return strconv.FormatInt(g.r.Int64()>>g.r.IntN(64), 10)
	case 2:
		f := g.r.NormFloat64() * []float64{1, 1e-40, 1e38, 1e300, 1e-310}[g.r.IntN(5)]
		return strconv.FormatFloat(f, []byte("eEfg")[g.r.IntN(4)], -1, 64)
	}
	return []string{"1e2", "1E+2", "0.1", "-0.0", "3.4028235e38", "3.5e38", "1e309", "1e-400",
		"0.30000000000000004", "123456789012345678901234567890", "1.0", "5e-324", "2e-324"}[g.r.IntN(13)]
}

// str is a string literal of plain text, escapes (surrogates paired or
// not), raw non-ASCII, invalid UTF-8 or control bytes.
func (g *docGen) str() string {
	var b strings.Builder
	b.WriteByte('"')
	for range g.r.IntN(8) {
		switch g.r.IntN(14) {
		case 0:
			b.WriteString([]string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[g.r.IntN(8)])
		case 1:
			b.WriteString(`\u` + strconv.FormatInt(0x10000+int64(g.r.IntN(0x10000)), 16)[1:])
		case 2:
			b.WriteString(`\ud83d\ude00`)
		case 3:
			b.WriteString([]string{`\ud83d`, `\ude00`, `\ud83d\u0041`, `\uDBFF\uDFFF`, `\u0000`}[g.r.IntN(5)])
		case 4:
			b.WriteString([]string{"é", "世", "😀", "\u2028", "\ufffd"}[g.r.IntN(5)])
		case 5:
			if g.r.IntN(4) == 0 {
				b.WriteString([]string{"\xff", "\xc3", "\xed\xa0\x80", "\x01", "\x7f", `\x`}[g.r.IntN(6)])
			}
		default:
			b.WriteByte(byte('a' + g.r.IntN(26)))
		}
	}
	b.WriteByte('"')
	return b.String()
}
