package restwire

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fast path of the consume body with the server's extension fields
// ("produce", "commit") against encoding/json: what it accepts, it decodes
// as encoding/json does, the raw fields byte for byte; what encoding/json
// refuses, it refuses.

var carryingConsumeSeeds = append([]string{
	`{"topics":["a"],"timeout":5000,"produce":[{"topic":"r","value":"x","headers":[{"key":"k","value":"v"}]}]}`,
	`{"topics":["a"],"timeout":5000,"produce":[{"topic":"r","value":"x"}],"commit":[{"topic":"a","partition":0,"offset":7}]}`,
	`{"topics":["a"],"commit":{"topic":"a","partition":0,"offset":7}}`,
	`{"produce":null}`, `{"produce":null,"commit":null}`, `{"produce" : [ ] , "commit" : [ ] }`,
	`{"produce":[1],"produce":{"value":"y"}}`, `{"produce":"s"}`, `{"produce":true}`, `{"produce":false}`,
	`{"produce":-0.5e+10}`, `{"produce":01}`, `{"produce":1.}`, `{"produce":.5}`, `{"produce":1e}`, `{"produce":-}`,
	`{"produce":"\u00e9\"\\\/\b\f\n\r\t"}`, `{"produce":"\ud800"}`, `{"produce":"\x"}`, `{"produce":"\u12G4"}`,
	`{"produce":"` + "\x01" + `"}`, `{"produce":"` + "\xff\xfe" + `"}`, `{"produce":[{"a":[{"b":{}}]}]}`,
	`{"produce":[1,]}`, `{"produce":{"a"}}`, `{"produce":{"a":1,}}`, `{"produce":[}`, `{"produce":tru}`,
	`{"produce":nul}`, `{"produce":[nullx]}`, `{"Produce":[]}`, `{"commit":[{"topic":"a"}],"other":1}`,
	`{"produce":"unterminated}`, `{"produce":[{"key":"\\u0041"}]}`, `{"produce":[[[[[[[[[[]]]]]]]]]]}`,
}, consumeSeeds...)

func TestFastDecodeCarryingConsumeRequest(t *testing.T) {
	fast := 0
	for _, in := range carryingConsumeSeeds {
		t.Run(in, func(t *testing.T) {
			if checkCarryingConsumeRequest(t, []byte(in)) {
				fast++
			}
		})
	}
	assert.GreaterOrEqual(t, fast, 20, "the fast path took too few of the seeds")
	// The body the REST client sends takes the fast path, its fields
	// aliasing the body.
	body := []byte(carryingConsumeSeeds[1])
	req, ok := DecodeCarryingConsumeRequest(body)
	require.True(t, ok)
	assert.Equal(t, `[{"topic":"r","value":"x"}]`, string(req.Produce))
	assert.Equal(t, `[{"topic":"a","partition":0,"offset":7}]`, string(req.Commit))
	assert.Equal(t, cap(req.Produce), len(req.Produce), "capped: an append copies")
	// Nesting deeper than the fast path follows is left to encoding/json.
	deep := []byte(`{"produce":` + nest(maxRawDepth+1) + `}`)
	_, ok = DecodeCarryingConsumeRequest(deep)
	assert.False(t, ok)
	require.True(t, json.Valid(deep))
	_, ok = DecodeCarryingConsumeRequest([]byte(`{"produce":` + nest(maxRawDepth) + `}`))
	assert.True(t, ok)
}

// nest is n nested arrays.
func nest(n int) string {
	b := make([]byte, 0, 2*n)
	for range n {
		b = append(b, '[')
	}
	for range n {
		b = append(b, ']')
	}
	return string(b)
}

// The fetch body the REST client sends with records to produce takes the
// fast path, "produce" aliasing the body; "commit" is read too (the server
// refuses it); nesting deeper than the fast path follows is left to
// encoding/json.
func TestFastDecodeCarryingFetchRequest(t *testing.T) {
	body := []byte(carriedFetchSeed)
	req, ok := DecodeFetchRequest(body)
	require.True(t, ok, "%s", body)
	assert.Equal(t, `[{"topic":"q","value":"x","headers":[{"key":"k","value":"v"}]}]`, string(req.Produce))
	assert.Equal(t, cap(req.Produce), len(req.Produce), "capped: an append copies")
	checkCarriedRecords(t, req.Produce, req.Records)
	require.Len(t, req.Records, 1)
	assert.Nil(t, req.Commit)
	require.Len(t, req.TopicPartitionOffsets, 1)
	req, ok = DecodeFetchRequest([]byte(`{"topic":"t","commit":[]}`))
	require.True(t, ok)
	assert.Equal(t, `[]`, string(req.Commit))
	assert.Nil(t, req.Produce)
	deep := []byte(`{"produce":` + nest(maxRawDepth+1) + `}`)
	_, ok = DecodeFetchRequest(deep)
	assert.False(t, ok)
	require.True(t, json.Valid(deep))
}

func FuzzFastDecodeCarryingConsumeRequest(f *testing.F) {
	fuzzDecoder(f, carryingConsumeSeeds, checkCarryingConsumeRequest)
}

// checkCarryingConsumeRequest reports whether the fast path took in,
// failing t if it took it differently from encoding/json.
func checkCarryingConsumeRequest(t *testing.T, in []byte) bool {
	got, ok := DecodeCarryingConsumeRequest(in)
	var want CarryingConsumeRequest
	err := json.Unmarshal(in, &want)
	if !ok {
		return false
	}
	require.NoError(t, err, "the fast path took a body encoding/json refuses")
	assert.Equal(t, want.ConsumeRequest, got.ConsumeRequest)
	assert.Equal(t, want.Produce == nil, got.Produce == nil, "produce present")
	assert.Equal(t, string(want.Produce), string(got.Produce))
	assert.Equal(t, want.Commit == nil, got.Commit == nil, "commit present")
	assert.Equal(t, string(want.Commit), string(got.Commit))
	checkCarriedRecords(t, got.Produce, got.Records)
	return true
}

// checkCarriedRecords fails t unless records, decoded from a body's
// "produce" value raw in the same pass, are what DecodeTopicMessages
// makes of raw alone (itself checked against encoding/json), nil exactly
// when it does not take raw.
func checkCarriedRecords(t *testing.T, raw []byte, records []TopicMessage) {
	t.Helper()
	alone, ok := DecodeTopicMessages(raw)
	require.Equal(t, ok, records != nil, "records decoded in the same pass exactly when DecodeTopicMessages takes %s", raw)
	assert.Equal(t, alone, records)
}

// A carried produce is decoded in the consume or fetch body's own pass:
// its records are those DecodeTopicMessages makes of the "produce" value,
// sharing no memory with the body (the server's pooled buffer, reused
// once the body is decoded); the last of two "produce" fields counts.
func TestCarriedRecordsDecodedInOnePass(t *testing.T) {
	bodies := []string{
		carryingConsumeSeeds[0], carryingConsumeSeeds[1], carriedFetchSeed,
		`{"topics":["a"],"produce":{"topic":"r","key":"k","value":"v","partition":2,"timestamp":5,"headers":[{"key":"h","value":"w"}]}}`,
		`{"topics":["a"],"produce":[{"topic":"r","value":"1"}],"produce":null}`,
		`{"topics":["a"],"produce":null,"produce":[{"topic":"r","value":"2"}]}`,
		`{"topics":["a"],"produce":[{"topic":"r","value":"1"}],"produce":[{"topic":"s","value":"2"},{"topic":"s","value":"3"}]}`,
		// Headers given twice: left to encoding/json, the raw value kept.
		`{"topics":["a"],"produce":[{"topic":"r","value":"1","headers":[],"headers":[]}]}`,
		`{"topic":"t","partition":0,"offset":1,"produce":[{"topic":"r","value":"\u00e9"}]}`,
	}
	for _, in := range bodies {
		body := []byte(in)
		var raw []byte
		var records []TopicMessage
		if c, ok := DecodeCarryingConsumeRequest(body); ok {
			raw, records = c.Produce, c.Records
		} else {
			f, ok := DecodeFetchRequest(body)
			require.True(t, ok, "%s", in)
			raw, records = f.Produce, f.Records
		}
		checkCarriedRecords(t, raw, records)
		want, _ := DecodeTopicMessages([]byte(string(raw)))
		for i := range body {
			body[i] = 'X' // the pooled buffer, reused
		}
		assert.Equal(t, want, records, "the records share no memory with the body: %s", in)
	}
	c, ok := DecodeCarryingConsumeRequest([]byte(bodies[4]))
	require.True(t, ok)
	assert.Equal(t, "null", string(c.Produce))
	assert.Nil(t, c.Records, "the last produce field counts")
	c, ok = DecodeCarryingConsumeRequest([]byte(bodies[6]))
	require.True(t, ok)
	require.Len(t, c.Records, 2, "the last produce field counts")
	c, ok = DecodeCarryingConsumeRequest([]byte(bodies[7]))
	require.True(t, ok)
	assert.Nil(t, c.Records, "left to encoding/json")
	assert.NotEmpty(t, c.Produce)
}
