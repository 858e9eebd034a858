package restwire

import (
	"bytes"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The word-at-a-time scans (swar.go) against the byte-at-a-time code they
// replaced, kept here as the reference: same bytes out, same decoding.

// refAppendString is AppendString as it was before the word-at-a-time
// scan.
func refAppendString[T string | []byte](b []byte, s T, e Escaping) []byte {
	b = append(b, '"')
	look := uint8(classStop | classHigh)
	if e == EscapeClient {
		look = classStop
	}
	start := 0
	for i := 0; i < len(s); {
		if strClass[s[i]]&look == 0 {
			i++
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf || e == EscapeClient {
			b = append(b, s[start:i]...)
			b = appendEscape(b, c)
			i++
			start = i
			continue
		}
		var r rune
		var size int
		switch v := any(s).(type) {
		case string:
			r, size = utf8.DecodeRuneInString(v[i:])
		case []byte:
			r, size = utf8.DecodeRune(v[i:])
		}
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// refRawString is (*decoder).rawString as it was.
func refRawString(d *decoder) ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

// refStrView is (*decoder).strView as it was.
func refStrView(d *decoder) ([]byte, bool) {
	b := d.b
	if d.i >= len(b) || b[d.i] != '"' {
		return nil, false
	}
	i := d.i + 1
	seg := i
	start := len(d.arena)
	escaped, ascii := false, true
	for {
		for i < len(b) && strClass[b[i]] == 0 {
			i++
		}
		if i >= len(b) {
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			d.i = i + 1
			var v []byte
			if escaped {
				d.arena = append(d.arena, b[seg:i]...)
				v = d.arena[start:len(d.arena):len(d.arena)]
			} else {
				v = b[seg:i:i]
			}
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\':
			escaped = true
			d.arena = append(d.arena, b[seg:i]...)
			d.i = i
			if !d.escape() {
				return nil, false
			}
			i = d.i
			seg = i
		case c < 0x20:
			return nil, false
		default:
			ascii = false
			i++
		}
	}
}

// TestStopBytesExact checks stopBytes on every byte value at every
// position of a word, among neighbours of every kind (a flagged byte below
// or above, 0x00 and 0xff around it, which is where a borrow or carry
// between bytes would show): exactly the bytes that need a look are
// flagged, so the lowest flagged byte is the first one.
func TestStopBytesExact(t *testing.T) {
	needs := func(c byte, high bool) bool {
		return c < 0x20 || c == '"' || c == '\\' || (high && c >= 0x80)
	}
	for _, high := range []bool{false, true} {
		hm := uint64(0)
		if high {
			hm = swarMSB
		}
		for _, fill := range []byte{'a', 0x00, 0xff, '"', '\\', 0x1f, 0x20, 0x21, 0x7f, 0x80, 0xa2, 0xdc, 0x5c, 0x5d, 0x23} {
			for pos := range 8 {
				for c := range 256 {
					var w [8]byte
					for k := range w {
						w[k] = fill
					}
					w[pos] = byte(c)
					x := uint64(0)
					for k := range w {
						x |= uint64(w[k]) << (8 * k)
					}
					m := stopBytes(x, hm)
					for k := range w {
						require.Equal(t, needs(w[k], high), m>>(8*k+7)&1 == 1, "word % x high %v byte %d", w, high, k)
					}
					require.Zero(t, m&^swarMSB, "only the high bit of a byte is set")
				}
			}
		}
		// And random words, bytes drawn mostly from the edges of the classes.
		r := rand.New(rand.NewPCG(1, 2))
		edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0x81, 0xa2, 0xdc, 0xfe, 0xff}
		for range 200000 {
			x := uint64(0)
			for k := range 8 {
				c := byte(r.Uint32())
				if r.IntN(4) > 0 {
					c = edges[r.IntN(len(edges))]
				}
				x |= uint64(c) << (8 * k)
			}
			m := stopBytes(x, hm)
			want := 8
			for k := range 8 {
				if needs(byte(x>>(8*k)), high) {
					want = k
					break
				}
			}
			require.Equal(t, want, bits.TrailingZeros64(m)>>3, "%016x high %v", x, high)
		}
	}
}

// swarInputs are strings with every byte that needs a look, at every
// position mod 8 and in the tail, among plain and non-ASCII text.
func swarInputs() []string {
	var ins []string
	for c := range 256 {
		for pos := range 19 {
			for _, tail := range []int{0, 1, 7, 8, 13} {
				ins = append(ins, strings.Repeat("a", pos)+string([]byte{byte(c)})+strings.Repeat("b", tail))
			}
		}
	}
	for _, s := range []string{"\u2028", "\u2029", "é", "世", "🎉", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\xc1\xbf", "\xc2\x80", "\xdf\xbf", "\xdf\xc0", "\xe0\x9f\xbf", "\xe0\xa0\x80", "\xe1\x80\x80", "\xec\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xef\xbf\xbf", "\xef\xbf", "\xe2\x80\xa7", "\xe2\x80\xaa", "\xf0\x90\x80\x80", "\\u00e9", `\"`, `\ud83d\ude00`, `\n`, `\/`} {
		for pos := range 19 {
			ins = append(ins, strings.Repeat("x", pos)+s+strings.Repeat("y", pos%5), strings.Repeat(s, pos))
		}
	}
	// Pairs of a byte that needs a look and the one after it, at every
	// position mod 8: where the classic word tests borrow into the next
	// byte and flag it falsely ("\x00 ", "\"#", "\\]").
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', '#', '\\', ']', 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	for _, c := range edges {
		for _, n := range edges {
			for pos := range 9 {
				ins = append(ins, strings.Repeat("a", pos)+string([]byte{c, n})+"bcdefghij")
			}
		}
	}
	ins = append(ins, trickyStrings...)
	ins = append(ins, `{"id":1,"name":"report"}`, "0190d5b2-7c1e-7a55-9c1d-000000000001", strings.Repeat("v", 300))
	return ins
}

// checkAppendString compares AppendString with refAppendString on s, in
// both modes and as both a string and a []byte, after a prefix in b.
func checkAppendString(t *testing.T, s []byte) {
	t.Helper()
	for _, e := range []Escaping{EscapeServer, EscapeClient} {
		want := refAppendString([]byte("p"), s, e)
		require.Equal(t, want, AppendString([]byte("p"), s, e), "bytes %q mode %d", s, e)
		require.Equal(t, want, AppendString([]byte("p"), string(s), e), "string %q mode %d", s, e)
		require.Equal(t, want, refAppendString([]byte("p"), string(s), e), "the reference's two forms %q", s)
	}
}

// checkDecodeString compares strView and rawString with the reference
// copies on the string that starts at body[0], and str and string, which
// are built on strView: the same result, position and arena.
func checkDecodeString(t *testing.T, body []byte) {
	t.Helper()
	for _, inPlace := range []bool{false, true} {
		d1 := decoder{b: body, arena: make([]byte, 1, len(body)+1), inPlace: inPlace}
		d2 := decoder{b: body, arena: make([]byte, 1, len(body)+1), inPlace: inPlace}
		want, wok := refStrView(&d1)
		got, gok := d2.strView()
		require.Equal(t, wok, gok, "strView %q", body)
		if wok {
			require.Equal(t, want, got, "strView %q", body)
			require.Equal(t, cap(want), cap(got), "strView %q: capped at its length", body)
			require.Equal(t, d1.i, d2.i, "strView %q", body)
			require.Equal(t, d1.arena, d2.arena, "strView %q", body)
		}
	}
	d1, d2 := decoder{b: body}, decoder{b: body}
	want, wok := refRawString(&d1)
	got, gok := d2.rawString()
	require.Equal(t, wok, gok, "rawString %q", body)
	require.Equal(t, want, got, "rawString %q", body)
	require.Equal(t, d1.i, d2.i, "rawString %q", body)
}

// decodeBodies wraps s as a JSON string's body in the ways a decoder
// meets it: closed, unclosed, followed by more JSON.
func decodeBodies(s []byte) [][]byte {
	return [][]byte{
		append(append([]byte{'"'}, s...), '"'),
		append([]byte{'"'}, s...),
		append(append([]byte{'"'}, s...), `","next":"ab\"c","x":1}`...),
	}
}

func TestSWARMatchesReference(t *testing.T) {
	for _, in := range swarInputs() {
		checkAppendString(t, []byte(in))
		for _, body := range decodeBodies([]byte(in)) {
			checkDecodeString(t, body)
		}
	}
	// Random strings over the bytes that matter, of every length to 40.
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab #]\"\\/\x00\x1f\x7f\x80\x9f\xa0\xbf\xc0\xc1\xc2\xc3\xa9\xdf\xe0\xe1\xe2\xa8\xa9\xec\xed\xee\xef\xf0\x9f\x8e\x89\xf4\xf5\xffnu0123456789efd8")
	for range 20000 {
		s := make([]byte, r.IntN(41))
		for k := range s {
			if r.IntN(3) == 0 {
				s[k] = alphabet[r.IntN(len(alphabet))]
			} else {
				s[k] = byte('a' + r.IntN(26))
			}
		}
		checkAppendString(t, s)
		for _, body := range decodeBodies(s) {
			checkDecodeString(t, body)
		}
	}
}

// FuzzAppendStringSWAR compares AppendString with the reference on any
// bytes, in both modes and both forms.
func FuzzAppendStringSWAR(f *testing.F) {
	for _, in := range append(trickyStrings, `{"id":1,"name":"report"}`, "0190d5b2-7c1e-7a55-9c1d-000000000001", "ab\u2028cdefgh\"ijklmnop\x01qrstu\xffvw") {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, s []byte) { checkAppendString(t, s) })
}

// FuzzDecodeStringSWAR compares the decoder's string scans with the
// reference on any bytes after an opening quote.
func FuzzDecodeStringSWAR(f *testing.F) {
	for _, in := range append(trickyStrings, `{\"id\":1,\"name\":\"report\"}`, "0190d5b2-7c1e-7a55-9c1d-000000000001", `a\u00e9bcdefgh\ud83d\ude00`, "ab\u2028cdefgh\\\"ijklmnop\\nqrstu\xffvw\"") {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		for _, body := range decodeBodies(s) {
			checkDecodeString(t, body)
		}
		checkDecodeString(t, s) // as it comes: not always a string
	})
}

// TestSWARSeesPastTheStringOnlyWithinTheBody checks that the scans never
// read outside the body they are given: a string cut at every length
// inside a larger buffer decodes as the reference decodes it.
func TestSWARSeesPastTheStringOnlyWithinTheBody(t *testing.T) {
	full := []byte(`"0190d5b2-7c1e-7a55-9c1d-000000000001 \"q\" é \u00e9 tail"` + strings.Repeat(`"`, 16))
	for n := range len(full) {
		body := bytes.Clone(full[:n:n])
		checkDecodeString(t, body)
		checkDecodeString(t, full[:n]) // bytes beyond len but within cap
	}
}
