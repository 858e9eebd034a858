package restwire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// stdJSON encodes v as encoding/json does without HTML escaping.
func stdJSON(t testing.TB, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return strings.TrimSuffix(buf.String(), "\n")
}

var trickyStrings = []string{
	"", "plain", `quote " and \ backslash`, "\n\r\t\b\f", "\x00\x01\x1f\x7f",
	"é ü 世界 🎉", "\u2028\u2029", "bad \xff utf8 \xc3", "<html>&amp;", "end\xe2\x82",
}

// TestAppendStringServerMatchesEncodingJSON checks the server's escaping
// against encoding/json (without HTML escaping) on tricky input.
func TestAppendStringServerMatchesEncodingJSON(t *testing.T) {
	for _, in := range trickyStrings {
		want := stdJSON(t, in)
		assert.Equal(t, want, string(AppendString(nil, in, EscapeServer)), "string %q", in)
		assert.Equal(t, want, string(AppendString(nil, []byte(in), EscapeServer)), "bytes %q", in)
	}
}

// TestAppendStringClient checks the client's escaping: on valid UTF-8 it is
// encoding/json's but for U+2028 and U+2029, which stay raw, and
// other bytes pass through.
func TestAppendStringClient(t *testing.T) {
	for _, in := range trickyStrings {
		got := string(AppendString(nil, in, EscapeClient))
		assert.Equal(t, got, string(AppendString(nil, []byte(in), EscapeClient)), "%q", in)
		if !utf8.ValidString(in) {
			assert.NotContains(t, got, `\ufffd`, "the client replaces nothing: %q", in)
			continue
		}
		want := strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(stdJSON(t, in))
		assert.Equal(t, want, got, "%q", in)
	}
	assert.Equal(t, "\"a\xffb\"", string(AppendString(nil, "a\xffb", EscapeClient)))
}

func TestAppendConsumedIsValidJSON(t *testing.T) {
	m := transport.Message{Topic: "t\"", Partition: 3, Offset: 9, Time: time.UnixMilli(1637745824883),
		Key: "k\n", Value: []byte("v\xff"), Headers: []transport.Header{{Key: "a", Value: "1"}, {Key: "b", Value: "\x00"}}}
	b := AppendConsumed(nil, &m)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got), "%s", b)
	assert.Equal(t, "v\ufffd", got["value"])
	assert.Equal(t, float64(1637745824883), got["timestamp"])
	assert.Len(t, got["headers"], 2)

	m.Headers = nil
	assert.Equal(t, `{"topic":"t\"","partition":3,"offset":9,"timestamp":1637745824883,"key":"k\n","value":"v\ufffd","headers":[]}`,
		string(AppendConsumed(nil, &m)), "documented field order, headers [] when none")
}

func TestAppendMetadataAndOffset(t *testing.T) {
	m := transport.Message{Topic: "a\u2028", Partition: 2, Offset: 7, Time: time.UnixMilli(5)}
	assert.Equal(t, `{"topic":"a\u2028","partition":2,"offset":7,"timestamp":5}`, string(AppendMetadata(nil, &m)))
	assert.Equal(t, `{"topic":"t","partition":1,"offset":-1}`, string(AppendTopicPartitionOffset(nil, "t", 1, -1)))
}

// TestServerAnswersDecodeOnClient sends the server's encoders' output
// through the client's decoders: every record comes back as it was, on the
// fast path.
func TestServerAnswersDecodeOnClient(t *testing.T) {
	msgs := []transport.Message{
		{Topic: "r", Partition: 1, Offset: 2, Time: time.UnixMilli(1_700_000_000_000), Key: "k\t\"é", Value: []byte("v\u2028\x01"),
			Headers: []transport.Header{{Key: "rpc-id", Value: "0190"}, {Key: "h", Value: "\\"}}},
		{Topic: "r", Offset: 3, Time: time.UnixMilli(1), Value: []byte{}},
	}
	b := []byte{'['}
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendConsumed(b, &msgs[i])
	}
	b = append(b, ']')
	got, ok := decodeMessagesFast(b)
	require.True(t, ok, "%s", b)
	assert.Equal(t, msgs, got)

	meta, ok := decodeMetadataFast(append(append([]byte{'['}, AppendMetadata(nil, &msgs[0])...), ']'))
	require.True(t, ok)
	assert.Equal(t, []Metadata{{Topic: "r", Partition: 1, Offset: 2, Timestamp: 1_700_000_000_000}}, meta)
}

func TestValueForms(t *testing.T) {
	var items []TopicMessage
	require.NoError(t, json.Unmarshal([]byte(`[{"value":"a\u00e9\"b"},{"value":null},{"value":[1, 2]},{}]`), &items))
	assert.Equal(t, "aé\"b", string(items[0].Value.Bytes))
	assert.False(t, items[1].Value.Set)
	assert.Equal(t, "[1, 2]", string(items[2].Value.Bytes))
	assert.False(t, items[3].Value.Set)
}

// TestClientRequestsEncode pins the bytes of the request bodies the client
// makes with encoding/json from these types.
func TestClientRequestsEncode(t *testing.T) {
	p, o := int32(2), int64(9)
	wait := float64(1500)
	assert.Equal(t, `{"topics":["a","b"],"timeout":1500}`, stdJSON(t, ConsumeRequest{Topics: []string{"a", "b"}, Timeout: &wait}))
	assert.Equal(t, `{"topicPartitionOffsets":[{"topic":"t","partition":2,"offset":9}],"timeout":1500}`,
		stdJSON(t, FetchRequest{TopicPartitionOffsets: []TopicPartitionOffset{{Topic: "t", Partition: &p, Offset: &o}}, Timeout: &wait}))
	assert.Equal(t, `[{"topic":"t","partition":2}]`, stdJSON(t, []TopicPartitionOffset{{Topic: "t", Partition: &p}}))
}

// A produce answer of many records decodes into a slice made once at its
// size: one allocation, the topic names shared.
func TestDecodeMetadataSizedOnce(t *testing.T) {
	msgs := rpcRecords()
	b := []byte{'['}
	for i := range 3 {
		for j := range msgs {
			if i+j > 0 {
				b = append(b, ',')
			}
			b = AppendMetadata(b, &msgs[j])
		}
	}
	b = append(b, ']')
	meta, err := DecodeMetadata(b)
	if err != nil || len(meta) != 3*len(msgs) {
		t.Fatalf("decoded %d of %d: %v", len(meta), 3*len(msgs), err)
	}
	if cap(meta) != len(meta) {
		t.Errorf("capacity %d for %d results", cap(meta), len(meta))
	}
	if allocs := testing.AllocsPerRun(20, func() { _, _ = DecodeMetadata(b) }); allocs != 1 {
		t.Errorf("%v allocations, want 1", allocs)
	}
}
