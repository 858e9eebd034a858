package upstash

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

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
}

// TestFastMessagesMatchesEncodingJSON checks the seeds; the fuzz test below
// explores further.
func TestFastMessagesMatchesEncodingJSON(t *testing.T) {
	fastHits := 0
	for _, seed := range consumedSeeds {
		if checkMessages(t, []byte(seed)) {
			fastHits++
		}
	}
	assert.GreaterOrEqual(t, fastHits, 10, "the fast path should take the common shapes")
}

func FuzzDecodeMessages(f *testing.F) {
	for _, s := range consumedSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkMessages(t, data) })
}

// checkMessages decodes data both ways and reports whether the fast path
// took it.
func checkMessages(t *testing.T, data []byte) bool {
	t.Helper()
	var ws []wireConsumed
	jsonErr := json.Unmarshal(data, &ws)
	fast, ok := fastMessages(data)
	if !ok {
		var ans messagesAnswer
		err := ans.decodeJSON(data)
		if jsonErr != nil {
			require.Error(t, err, "%q", data)
		} else {
			require.NoError(t, err, "%q", data)
			require.Equal(t, toMessages(ws), ans.msgs, "%q", data)
		}
		return false
	}
	require.NoError(t, jsonErr, "the fast path took %q, which encoding/json refuses", data)
	require.Equal(t, toMessages(ws), fast, "%q", data)
	return true
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

func TestFastMetadataMatchesEncodingJSON(t *testing.T) {
	fastHits := 0
	for _, seed := range metadataSeeds {
		if checkMetadata(t, []byte(seed)) {
			fastHits++
		}
	}
	assert.GreaterOrEqual(t, fastHits, 4, "the fast path should take the common shapes")
}

func FuzzDecodeMetadata(f *testing.F) {
	for _, s := range metadataSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkMetadata(t, data) })
}

func checkMetadata(t *testing.T, data []byte) bool {
	t.Helper()
	var want []wireMetadata
	jsonErr := json.Unmarshal(data, &want)
	fast, ok := fastMetadata(data)
	if !ok {
		return false
	}
	require.NoError(t, jsonErr, "the fast path took %q, which encoding/json refuses", data)
	if len(want) == 0 {
		require.Empty(t, fast, "%q", data)
	} else {
		require.Equal(t, want, fast, "%q", data)
	}
	return true
}

// FuzzAppendProduce checks that the hand-written produce encoding says what
// marshal(wireProduce) says, for any valid message.
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
		got, err := encodeProduce(0, &m)
		valid := topic != "" && (!manual || part >= 0)
		for _, s := range []string{topic, key, value, hk, hv} {
			valid = valid && utf8.ValidString(s)
		}
		if !valid {
			require.ErrorIs(t, err, transport.ErrInvalid)
			return
		}
		require.NoError(t, err)
		require.True(t, json.Valid(got), "%s", got)
		var a, b map[string]any
		require.NoError(t, json.Unmarshal(got, &a))
		w := wireProduce{Topic: topic, Key: key, Value: value, Timestamp: m.Time.UnixMilli()}
		if m.Time.IsZero() {
			w.Timestamp = 0
		}
		if manual {
			w.Partition = &part
		}
		for _, h := range m.Headers {
			w.Headers = append(w.Headers, wireHeader(h))
		}
		ref, err := marshal(w)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(ref, &b))
		require.Equal(t, b, a)
		require.False(t, strings.Contains(string(got), `\u20`), "U+2028/U+2029 need no escape: %s", got)
	})
}

// TestTextRoundTrip sends awkward text through the real server and back:
// the encoder's escapes must be read by the server, and the server's by the
// decoder, without a change.
func TestTextRoundTrip(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(1)}})
	tr := newTestTransport(t, s.URL)
	ctx := t.Context()
	tail, err := tr.Tail(ctx, "text")
	require.NoError(t, err)
	defer tail.Close()
	cases := []string{
		"",
		"plain",
		`{"json":"with \"quotes\" and \\ backslashes"}`,
		"\x00\x01\x1f\t\n\r\b\f",
		"\u2028\u2029 <>& é 中文 😀",
		strings.Repeat(`"\`, 1000),
	}
	var sent []transport.Message
	for i, v := range cases {
		sent = append(sent, transport.Message{
			Topic: "text", Key: v, Value: []byte(v),
			Headers: []transport.Header{{Key: "case", Value: v}, {Key: v, Value: "x"}},
			Time:    time.UnixMilli(int64(1_700_000_000_000 + i)),
		})
	}
	_, err = tr.Produce(ctx, sent...)
	require.NoError(t, err)
	got := pollN(t, tail, len(cases))
	require.Len(t, got, len(cases))
	for i, m := range got {
		assert.Equal(t, cases[i], m.Key)
		assert.Equal(t, cases[i], string(m.Value))
		assert.Equal(t, sent[i].Headers, m.Headers)
		assert.True(t, sent[i].Time.Equal(m.Time))
	}
}
