package upstash

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The wire's encoders and decoders are fuzzed against encoding/json in
// internal/restwire; here, what the client adds: its refusals, and text
// through the real server and back.

// TestEncodeProduceRefuses checks that what the REST API cannot carry is
// refused before it is sent, not corrupted on the way.
func TestEncodeProduceRefuses(t *testing.T) {
	ok := transport.Message{Topic: "t", Key: "k", Value: []byte("v"), Headers: []transport.Header{{Key: "h", Value: "v"}}}
	for name, edit := range map[string]func(m *transport.Message){
		"empty topic":        func(m *transport.Message) { m.Topic = "" },
		"negative partition": func(m *transport.Message) { m.Partition, m.ManualPartition = -1, true },
		"topic not UTF-8":    func(m *transport.Message) { m.Topic = "t\xff" },
		"key not UTF-8":      func(m *transport.Message) { m.Key = "\xc3" },
		"value not UTF-8":    func(m *transport.Message) { m.Value = []byte("a\xffb") },
		"header not UTF-8":   func(m *transport.Message) { m.Headers = []transport.Header{{Key: "h", Value: "\xe2\x82"}} },
		"time before 1970":   func(m *transport.Message) { m.Time = time.UnixMilli(-5) },
	} {
		m := ok
		edit(&m)
		_, err := encodeProduce(3, &m)
		require.ErrorIs(t, err, transport.ErrInvalid, name)
		assert.Contains(t, err.Error(), "message 3", name)
	}
	got, err := encodeProduce(0, &ok)
	require.NoError(t, err)
	assert.Equal(t, `{"topic":"t","key":"k","value":"v","headers":[{"key":"h","value":"v"}]}`, string(got))
	ok.Value = []byte("\u2028")
	got, err = encodeProduce(0, &ok)
	require.NoError(t, err)
	assert.Contains(t, string(got), "\u2028", "U+2028 travels raw")
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
