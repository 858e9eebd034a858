package restwire

import (
	"strings"
	"testing"
)

// break9BadUTF8 are byte sequences that are not valid UTF-8 (encoding/json
// replaces each bad byte with U+FFFD), and valid ones for contrast.
var break9BadUTF8 = []string{
	"\x80", "\xbf", "\xc0", "\xc1\xbf", "\xc0\xaf", "\xc3", "\xe4\xb8", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xf0\x9f\x98", "\xf4\x90\x80\x80", "\xf5", "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xc3\xa9\xff",
	// valid
	"\xc3\xa9", "\xe4\xb8\x96", "\xf0\x9f\x98\x80", "\xe2\x80\xa8",
}

// break9Spots are the places of a string a sequence is put: alone, among
// plain bytes, and beside escapes (the escaped path unescapes onto the
// arena, the plain one returns a view: both must see the high bytes).
var break9Spots = []string{"%s", "a%sb", "%s" + strings.Repeat("x", 40), `\n%s`, `%s\n`, `\u00e9%s`, `%s\u00e9`, `a\"%s\"b`,
	strings.Repeat("y", 40) + `\t%s`}

// Every decoder, at every string of its shape, takes a bad UTF-8 sequence
// as encoding/json does (the fast path gives up, and encoding/json replaces
// the bytes) and a good one as encoding/json does too: the byte-class
// tables of strView and skipString still see every high byte.
func TestBreak9InvalidUTF8EverywhereAsEncodingJSON(t *testing.T) {
	produce := []string{
		`[{"topic":"%s","value":"v"}]`, `[{"topic":"t","key":"%s","value":"v"}]`, `[{"topic":"t","value":"%s"}]`,
		`[{"topic":"t","value":"v","headers":[{"key":"%s","value":"hv"}]}]`,
		`[{"topic":"t","value":"v","headers":[{"key":"h","value":"%s"}]}]`,
		`[{"topic":"t","value":"v","headers":[{"key":"h","value":"ok","value":"%s"}]}]`,
	}
	consumed := []string{
		`[{"topic":"%s","partition":0,"offset":0,"timestamp":1,"key":"","value":"","headers":[]}]`,
		`[{"topic":"t","partition":0,"offset":0,"timestamp":1,"key":"%s","value":"","headers":[]}]`,
		`[{"topic":"t","partition":0,"offset":0,"timestamp":1,"key":"","value":"%s","headers":[]}]`,
		`[{"topic":"t","partition":0,"offset":0,"timestamp":1,"key":"","value":"","headers":[{"key":"%s","value":"x"}]}]`,
		`[{"topic":"t","partition":0,"offset":0,"timestamp":1,"key":"","value":"","headers":[{"key":"h","value":"%s"}]}]`,
	}
	metadata := []string{`[{"topic":"%s","partition":0,"offset":0,"timestamp":1}]`, `[{"topic":"t","partition":0,"offset":0,"timestamp":1,"error":"%s"}]`}
	// skipString: raw values keep their bytes as written, as
	// json.RawMessage does; the topics are strings.
	carrying := []string{
		`{"topics":["%s"],"timeout":1}`, `{"topic":"%s"}`,
		`{"topics":["t"],"produce":[{"topic":"t","value":"%s"}]}`, `{"topics":["t"],"commit":{"topic":"%s","partition":0}}`,
		`{"topics":["t"],"produce":{"%s":1}}`,
	}
	fetch := []string{`{"topic":"%s","partition":0,"offset":0}`, `{"topicPartitionOffsets":[{"topic":"%s","partition":0,"offset":1}]}`,
		`{"topic":"t","partition":0,"offset":0,"produce":[{"topic":"t","value":"%s"}]}`}

	for _, seq := range break9BadUTF8 {
		for _, spot := range break9Spots {
			s := strings.Replace(spot, "%s", seq, 1)
			fill := func(shape string) []byte { return []byte(strings.Replace(shape, "%s", s, 1)) }
			for _, shape := range produce {
				checkTopicMessages(t, fill(shape))
				attackProduce(t, fill(shape))
			}
			for _, shape := range consumed {
				checkMessages(t, fill(shape))
				attackMessages(t, fill(shape))
			}
			for _, shape := range metadata {
				checkMetadata(t, fill(shape))
			}
			for _, shape := range carrying {
				checkCarryingConsumeRequest(t, fill(shape))
			}
			for _, shape := range fetch {
				checkFetchRequest(t, fill(shape))
			}
		}
	}
	if t.Failed() {
		return
	}
	// The common shape with a valid multi-byte value still takes the fast
	// path, and an invalid one leaves it.
	if _, ok := DecodeTopicMessages([]byte("[{\"topic\":\"t\",\"value\":\"a\xc3\xa9b\"}]")); !ok {
		t.Error("valid UTF-8 left the fast path")
	}
	if _, ok := DecodeTopicMessages([]byte("[{\"topic\":\"t\",\"value\":\"a\xc3b\"}]")); ok {
		t.Error("invalid UTF-8 taken on the fast path")
	}
	if _, ok := decodeMessagesFast([]byte("[{\"topic\":\"t\",\"key\":\"" + strings.Repeat("k", 40) + "\xff\"}]")); ok {
		t.Error("invalid UTF-8 in a long (kept) key taken on the fast path")
	}
}
