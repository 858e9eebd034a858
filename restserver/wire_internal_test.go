package restserver

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestAppendJSONStringMatchesEncodingJSON checks the hand-written escaper
// against encoding/json (without HTML escaping) on tricky input.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		"", "plain", `quote " and \ backslash`, "\n\r\t\b\f", "\x00\x01\x1f\x7f",
		"é ü 世界 🎉", "\u2028\u2029", "bad \xff utf8 \xc3", "<html>&amp;", "end\xe2\x82",
	}
	for _, in := range inputs {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(in))
		wantS := string(bytes.TrimSuffix(want.Bytes(), []byte("\n")))
		assert.Equal(t, wantS, string(appendJSONString(nil, in)), "string %q", in)
		assert.Equal(t, wantS, string(appendJSONString(nil, []byte(in))), "bytes %q", in)
	}
}

func TestAppendConsumedIsValidJSON(t *testing.T) {
	m := transport.Message{Topic: "t\"", Partition: 3, Offset: 9, Time: time.UnixMilli(1637745824883),
		Key: "k\n", Value: []byte("v\xff"), Headers: []transport.Header{{Key: "a", Value: "1"}, {Key: "b", Value: "\x00"}}}
	b := appendConsumed(nil, &m)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got), "%s", b)
	assert.Equal(t, "v\ufffd", got["value"])
	assert.Equal(t, float64(1637745824883), got["timestamp"])
	assert.Len(t, got["headers"], 2)
}

func TestJSONValueForms(t *testing.T) {
	var items []produceItem
	require.NoError(t, json.Unmarshal([]byte(`[{"value":"a\u00e9\"b"},{"value":null},{"value":[1, 2]},{}]`), &items))
	assert.Equal(t, "aé\"b", string(items[0].Value.b))
	assert.False(t, items[1].Value.set)
	assert.Equal(t, "[1, 2]", string(items[2].Value.b))
	assert.False(t, items[3].Value.set)
}

// sameItems compares decoded produce items, treating nil and empty slices
// alike.
func sameItems(t *testing.T, want, got []produceItem) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		w, g := want[i], got[i]
		assert.Equal(t, w.Topic, g.Topic)
		assert.Equal(t, w.Key, g.Key)
		assert.Equal(t, w.Partition, g.Partition)
		assert.Equal(t, w.Timestamp, g.Timestamp)
		assert.Equal(t, w.Value.set, g.Value.set)
		assert.Equal(t, string(w.Value.b), string(g.Value.b))
		assert.Equal(t, w.Value.b == nil, g.Value.b == nil)
		require.Equal(t, len(w.Headers), len(g.Headers))
		for j := range w.Headers {
			assert.Equal(t, w.Headers[j], g.Headers[j])
		}
	}
}

var fastDecodeSeeds = []string{
	`{"value":"x"}`,
	`[{"topic":"t","value":"a"},{"topic":"t","partition":1,"timestamp":1637745834744,"key":"k","value":"b","headers":[{"key":"h","value":"v"},{}]}]`,
	`{"key":"App\\Http\\Controllers\\ReportsController","value":"{\"from\":\"2024-05-01\",\"p\":\"a\/b\"}"}`,
	` [ ] `, `[]`, `{}`, `[{}]`, `{"value":""}`, `{"value":"é世界"}`, `{"headers":[]}`,
	`{"partition":-0}`, `{"partition":2147483647}`, `{"partition":2147483648}`, `{"partition":-2147483649}`,
	`{"timestamp":-9223372036854775808}`, `{"timestamp":9223372036854775808}`, `{"timestamp":1e3}`, `{"timestamp":1.5}`,
	`{"partition":01}`, `{"value":"\u00e9"}`, `{"value":"a\qb"}`, `{"value":"\x01"}`, `{"value":"\xff"}`,
	`{"value":null}`, `{"Value":"x"}`, `{"value":1}`, `{"value":"x",}`, `{"value":"x"} x`, `[{"value":"x"},]`,
	`{"value":"x","value":"y"}`, `{"headers":[{"key":"a","key":"b"}]}`, `{"other":1}`, `"x"`, `{"value":"x"`,
	`[{"value":"x"}`, "\ufeff{}", `{"headers":[null]}`, `{"key":"\"","value":"\\\/\b\f\n\r\t"}`, `{"topic":"a"}`,
}

func TestFastDecodeProduceSeeds(t *testing.T) {
	fast := 0
	for _, in := range fastDecodeSeeds {
		t.Run(in, func(t *testing.T) {
			got, ok := fastDecodeProduce([]byte(in))
			want, err := decodeOneOrMany[produceItem]([]byte(in), "a message")
			if ok {
				fast++
				require.NoError(t, err, "fast path accepted what encoding/json rejects")
				sameItems(t, want, got)
			}
		})
	}
	assert.Greater(t, fast, 15, "the fast path takes the common forms")
	// The common forms do take the fast path.
	for _, in := range fastDecodeSeeds[:3] {
		_, ok := fastDecodeProduce([]byte(in))
		assert.True(t, ok, in)
	}
}

func FuzzFastDecodeProduce(f *testing.F) {
	for _, s := range fastDecodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := fastDecodeProduce(in)
		if !ok {
			return
		}
		want, err := decodeOneOrMany[produceItem](in, "a message")
		require.NoError(t, err, "fast path accepted what encoding/json rejects: %q", in)
		sameItems(t, want, got)
	})
}
