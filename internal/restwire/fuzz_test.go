package restwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Each fast path against encoding/json. The corpora are in testdata/fuzz.

// fuzzDecoder fuzzes a decoder's check, starting from seeds.
func fuzzDecoder(f *testing.F, seeds []string, check func(*testing.T, []byte) bool) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { check(t, data) })
}

// stdTopicMessages decodes a produce body with encoding/json as the server
// does when the fast path gives up: one object or an array of them.
func stdTopicMessages(body []byte) ([]TopicMessage, error) {
	switch b := bytes.TrimLeft(body, " \t\r\n"); {
	case len(b) > 0 && b[0] == '{':
		var one TopicMessage
		err := json.Unmarshal(body, &one)
		return []TopicMessage{one}, err
	case len(b) > 0 && b[0] == '[':
		var many []TopicMessage
		err := json.Unmarshal(body, &many)
		return many, err
	}
	return nil, errors.New("neither an object nor an array")
}

// sameItems compares decoded produce items, treating nil and empty header
// slices alike.
func sameItems(t *testing.T, want, got []TopicMessage) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		w, g := want[i], got[i]
		assert.Equal(t, w.Topic, g.Topic)
		assert.Equal(t, w.Key, g.Key)
		assert.Equal(t, w.Partition, g.Partition)
		assert.Equal(t, w.Timestamp, g.Timestamp)
		assert.Equal(t, w.Value.Set, g.Value.Set)
		assert.Equal(t, string(w.Value.Bytes), string(g.Value.Bytes))
		assert.Equal(t, w.Value.Bytes == nil, g.Value.Bytes == nil)
		require.Equal(t, len(w.Headers), len(g.Headers))
		for j := range w.Headers {
			assert.Equal(t, w.Headers[j], g.Headers[j])
		}
	}
}

var produceSeeds = []string{
	`{"value":"x"}`,
	`[{"topic":"t","value":"a"},{"topic":"t","partition":1,"timestamp":1637745834744,"key":"k","value":"b","headers":[{"key":"h","value":"v"},{}]}]`,
	`{"key":"App\\Http\\Controllers\\ReportsController","value":"{\"from\":\"2024-05-01\",\"p\":\"a\/b\"}"}`,
	` [ ] `, `[]`, `{}`, `[{}]`, `{"value":""}`, `{"value":"é世界"}`, `{"headers":[]}`,
	`{"partition":-0}`, `{"partition":2147483647}`, `{"partition":2147483648}`, `{"partition":-2147483649}`,
	`{"timestamp":-9223372036854775808}`, `{"timestamp":9223372036854775808}`, `{"timestamp":1e3}`, `{"timestamp":1.5}`,
	`{"partition":01}`, `{"value":"\u00e9"}`, `{"value":"\ud83d\ude00"}`, `{"value":"a\qb"}`, `{"value":"\x01"}`, `{"value":"\xff"}`,
	`{"value":null}`, `{"Value":"x"}`, `{"value":1}`, `{"value":"x",}`, `{"value":"x"} x`, `[{"value":"x"},]`,
	`{"value":"x","value":"y"}`, `{"headers":[{"key":"a","key":"b"}]}`, `{"other":1}`, `"x"`, `{"value":"x"`,
	`[{"value":"x"}`, "\ufeff{}", `{"headers":[null]}`, `{"key":"\"","value":"\\\/\b\f\n\r\t"}`, `{"topic":"a"}`,
	// escaped and plain keys, values and header values in one record, and
	// fields given twice, which share the record's one allocation
	`{"key":"a\"b","value":"c\nd","headers":[{"key":"h","value":"x\ty"},{"key":"i","value":"plain-value-longer-than-thirty-two-bytes"}]}`,
	`{"key":"first","key":"k\u00e9","value":"v1","value":"\"v2\"","headers":[{"key":"h","value":"a\"","value":"b"}]}`,
	`[{"key":"\u00e9","value":"","headers":[]},{"value":"é","key":"","headers":[{"key":"rpc-v","value":"1"},{"key":"x","value":""}]}]`,
}

func TestFastDecodeProduceSeeds(t *testing.T) {
	fast := 0
	for _, in := range produceSeeds {
		t.Run(in, func(t *testing.T) {
			if checkTopicMessages(t, []byte(in)) {
				fast++
			}
		})
	}
	assert.Greater(t, fast, 15, "the fast path takes the common forms")
	// The common forms do take the fast path.
	for _, in := range produceSeeds[:3] {
		_, ok := DecodeTopicMessages([]byte(in))
		assert.True(t, ok, in)
	}
}

func FuzzFastDecodeProduce(f *testing.F) { fuzzDecoder(f, produceSeeds, checkTopicMessages) }

// checkTopicMessages decodes in both ways and reports whether the fast
// path took it.
func checkTopicMessages(t *testing.T, in []byte) bool {
	t.Helper()
	got, ok := DecodeTopicMessages(in)
	if !ok {
		return false
	}
	want, err := stdTopicMessages(in)
	require.NoError(t, err, "fast path accepted what encoding/json rejects: %q", in)
	sameItems(t, want, got)
	return true
}

// consumedSeeds are consume/fetch answers: the project server's compact
// form, Upstash's pretty-printed (Jackson) form, and shapes the fast path
// must hand to encoding/json.
var consumedSeeds = []string{
	`[]`,
	` [ ] `,
	`[{"topic":"t","partition":0,"offset":5,"timestamp":1637745824883,"key":"","value":"hello-world","headers":[]}]`,
	"[ {\n  \"topic\" : \"newtopic\",\n  \"partition\" : 0,\n  \"offset\" : 1,\n  \"timestamp\" : 1641815036979,\n  \"key\" : \"\",\n  \"value\" : \"hello\",\n  \"headers\" : [ ]\n} ]",
	`[{"topic":"r","partition":3,"offset":9,"timestamp":1,"key":"k","value":"{\"id\":1,\"name\":\"a\\\\b\"}","headers":[{"key":"rpc-v","value":"1"},{"key":"rpc-id","value":"0190"}]},{"topic":"r","partition":1,"offset":2,"timestamp":2,"key":"k2","value":"x","headers":[{"key":"rpc-v","value":"1"}]}]`,
	`[{"topic":"t","value":"tab\there\nnl \u0001 \u00e9 \u20ac \/"}]`,
	`[{"topic":"t","value":"\ud83d\ude00"}]`,  // a surrogate pair: encoding/json
	`[{"topic":"t","value":"\ud83d"}]`,        // a lone surrogate: encoding/json
	`[{"topic":"t","value":"é ü 中文 😀"}]`,      // raw UTF-8
	"[{\"topic\":\"t\",\"value\":\"\xff\"}]",  // invalid UTF-8: encoding/json
	`[{"topic":"t","Value":"case"}]`,          // another spelling: encoding/json
	`[{"topic":"t","extra":1,"value":"v"}]`,   // unknown field: encoding/json
	`[{"topic":"t","value":null}]`,            // null: encoding/json
	`[{"topic":"t","value":"a","value":"b"}]`, // repeated: encoding/json
	`[{"topic":"t","headers":[{"key":"a","value":"1"}],"headers":[{"key":"b"}]}]`,
	`[{"topic":"t","partition":1.0}]`,
	`[{"topic":"t","partition":2147483648}]`,
	`[{"topic":"t","offset":-1,"timestamp":-0}]`,
	`[{"topic":"t","offset":01}]`,
	`[{"topic":"t"},]`,
	`[{"topic":"t"}] x`,
	`[{}]`,
	`null`,
	`{"topic":"t"}`,
	`[{"topic":"t","headers":null}]`,
	`[{"topic":"t","headers":[{}]}]`,
	`[{"topic":"t","key":"\u0000"}]`,
	// long keys and header values, kept on the arena, escaped or not
	`[{"topic":"t","partition":0,"offset":1,"timestamp":1,"key":"0190d5b2-7c1e-7a55-9c1d-000000000001-x","value":"{\"a\":1}","headers":[{"key":"rpc-id","value":"0190d5b2-7c1e-7a55-9c1d-000000000001\"q"},{"key":"h","value":"short"},{"key":"h2","value":"v","value":"0190d5b2-7c1e-7a55-9c1d-000000000002"}]}]`,
}

func FuzzDecodeMessages(f *testing.F) { fuzzDecoder(f, consumedSeeds, checkMessages) }

// checkMessages decodes data both ways and reports whether the fast path
// took it.
func checkMessages(t *testing.T, data []byte) bool {
	t.Helper()
	std := func(data []byte) ([]transport.Message, error) {
		var ws []ConsumedMessage
		err := json.Unmarshal(data, &ws)
		return Messages(ws), err
	}
	return checkFast(t, data, std, decodeMessagesFast, DecodeMessages)
}

// checkFast checks a client decoder on data: its fast path never takes
// what encoding/json (std) refuses, and both its fast path and its whole
// (full) give what std gives. It reports whether the fast path took data.
func checkFast[T any](t *testing.T, data []byte, std func([]byte) (T, error), fast func([]byte) (T, bool), full func([]byte) (T, error)) bool {
	t.Helper()
	want, jsonErr := std(data)
	got, ok := fast(data)
	if ok {
		require.NoError(t, jsonErr, "the fast path took %q, which encoding/json refuses", data)
		require.Equal(t, want, got, "%q", data)
		return true
	}
	got, err := full(data)
	if jsonErr != nil {
		require.Error(t, err, "%q", data)
	} else {
		require.NoError(t, err, "%q", data)
		require.Equal(t, want, got, "%q", data)
	}
	return false
}

var metadataSeeds = []string{
	`[]`,
	`[{"topic":"t","partition":0,"offset":0,"timestamp":1637743323016}]`,
	`[ {"topic" : "a", "partition" : 2, "offset" : 7, "timestamp" : 1}, {"topic":"b","partition":0,"offset":1,"timestamp":2,"error":"bad"} ]`,
	`[{"topic":"t","offset":1,"offset":2}]`,
	`[{"topic":"t","offset":"1"}]`,
	`[{"topic":"t","other":true}]`,
	`[{"topic":"t\u00e9"}]`,
	`{"topic":"t"}`,
	`null`,
}

// TestClientFastPathsMatchEncodingJSON checks the seeds of the client's
// decoders; the fuzz targets explore further.
func TestClientFastPathsMatchEncodingJSON(t *testing.T) {
	for _, tt := range []struct {
		name    string
		seeds   []string
		check   func(*testing.T, []byte) bool
		minFast int // the fast path should take the common shapes
	}{
		{"messages", consumedSeeds, checkMessages, 10},
		{"metadata", metadataSeeds, checkMetadata, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fast := 0
			for _, seed := range tt.seeds {
				if tt.check(t, []byte(seed)) {
					fast++
				}
			}
			assert.GreaterOrEqual(t, fast, tt.minFast)
		})
	}
}

func FuzzDecodeMetadata(f *testing.F) { fuzzDecoder(f, metadataSeeds, checkMetadata) }

func checkMetadata(t *testing.T, data []byte) bool {
	t.Helper()
	std := func(data []byte) (meta []Metadata, err error) {
		err = json.Unmarshal(data, &meta)
		return meta, err
	}
	return checkFast(t, data, std, decodeMetadataFast, DecodeMetadata)
}

// FuzzAppendProduce checks that the client's TopicMessage encoding says
// what encoding/json says of the same TopicMessage, for any valid message
// (the client refuses the others before encoding), and that the server
// reads it on its fast path as the same record.
func FuzzAppendProduce(f *testing.F) {
	f.Add("topic", "key", "value", "h", "v", int32(0), false, int64(0))
	f.Add("t", "", `{"a":"b\\c"}`, "rpc-id", "0190-ab", int32(3), true, int64(1637743323016))
	f.Add("t", "\x00\x1f\u2028", "\t\n\r\b\f\"\\/<>&", "é", "😀", int32(0), false, int64(1))
	f.Fuzz(func(t *testing.T, topic, key, value, hk, hv string, part int32, manual bool, ts int64) {
		m := transport.Message{Topic: topic, Key: key, Value: []byte(value), Partition: part, ManualPartition: manual}
		if ts > 0 {
			m.Time = time.UnixMilli(ts)
		}
		if hk != "" || hv != "" {
			m.Headers = []transport.Header{{Key: hk, Value: hv}, {Key: hv, Value: hk}}
		}
		for _, s := range []string{topic, key, value, hk, hv} {
			if !utf8.ValidString(s) {
				return // refused by the client (EscapeClient)
			}
		}
		got := AppendTopicMessage(nil, &m)
		require.True(t, json.Valid(got), "%s", got)
		var a, b map[string]any
		require.NoError(t, json.Unmarshal(got, &a))
		require.NoError(t, json.Unmarshal([]byte(stdJSON(t, refTopicMessage(&m))), &b))
		require.Equal(t, b, a)
		require.False(t, strings.Contains(string(got), `\u20`), "U+2028/U+2029 need no escape: %s", got)

		items, ok := DecodeTopicMessages(got)
		require.True(t, ok, "the server's fast path reads the client's encoding: %s", got)
		want, err := stdTopicMessages(got)
		require.NoError(t, err)
		sameItems(t, want, items)
	})
}

// refTopicMessage is what the client sends for m, for encoding/json: as a
// TopicMessage with omitempty, the value as a JSON string.
func refTopicMessage(m *transport.Message) any {
	type ref struct {
		TopicMessage
		Value string `json:"value"`
	}
	r := ref{TopicMessage: TopicMessage{Topic: m.Topic, Key: m.Key}, Value: string(m.Value)}
	if m.ManualPartition {
		r.Partition = &m.Partition
	}
	if !m.Time.IsZero() {
		ts := m.Time.UnixMilli()
		r.Timestamp = &ts
	}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, Header(h))
	}
	return r
}
