package restwire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fast paths of the consume and fetch request bodies against
// encoding/json: what they accept, they decode as encoding/json does; what
// encoding/json refuses, they refuse.

var consumeSeeds = []string{
	`{"topics":["a","b"],"timeout":5000}`, `{"topic":"a"}`, `{"topic":"a","topics":["b"],"timeout":0}`,
	`{}`, ` { "topics" : [ ] } `, `{"topics":["a"],"topics":["b"]}`, `{"timeout":-1}`, `{"timeout":1.5}`,
	`{"timeout":1e3}`, `{"timeout":null}`, `{"topics":null}`, `{"Topics":["a"]}`, `{"topics":[1]}`,
	`{"topics":["a"],}`, `{"topics":["a"]} x`, `[]`, `{"other":1}`, `{"topics":["\u00e9"]}`, `{"topic":"\xff"}`,
	`{"timeout":9007199254740993}`,
}

// carriedFetchSeed is a fetch body as the REST client sends it with records
// to produce.
const carriedFetchSeed = `{"topicPartitionOffsets":[{"topic":"r","partition":0,"offset":7}],"timeout":5000,"produce":[{"topic":"q","value":"x","headers":[{"key":"k","value":"v"}]}]}`

var fetchSeeds = []string{
	`{"topicPartitionOffsets":[{"topic":"r","partition":0,"offset":7},{"topic":"r","partition":1,"offset":0}],"timeout":5000}`,
	`{"topic":"t","partition":2,"offset":9}`, `{"topic":"t"}`, `{"topicPartitionOffsets":[]}`, `{"topicPartitionOffsets":[{}]}`,
	`{"topicPartitionOffsets":[{"topic":"a","partition":1,"partition":2}]}`, `{"partition":2147483648}`,
	`{"offset":-1}`, `{"offset":1.0}`, `{"topicPartitionOffsets":null}`, `{"topicPartitionOffsets":[null]}`,
	`{"topicpartitionoffsets":[]}`, `{"timeout":"5"}`, `{"topic":"t","offset":9223372036854775807}`,
	// The REST server's extension: records carried by the fetch (and a
	// commit, which the server refuses).
	carriedFetchSeed, `{"topic":"t","produce":{"topic":"q","value":"x"}}`, `{"produce":null}`, `{"produce":[],"commit":null}`,
	`{"topic":"t","commit":[{"topic":"t","partition":0,"offset":1}]}`, `{"produce":[1],"produce":"s"}`,
	`{"produce":[1,]}`, `{"produce":{"a"}}`, `{"produce":"\ud800"}`, `{"produce":tru}`, `{"Produce":[]}`,
	`{"produce":[{"topic":"q","value":"` + "\xff" + `"}]}`, `{"produce":[[[[[[[[]]]]]]]]}`, `{"commit":-0.5e+10}`,
}

func TestFastDecodeConsumeRequest(t *testing.T) {
	fast := 0
	for _, in := range consumeSeeds {
		t.Run(in, func(t *testing.T) {
			if checkConsumeRequest(t, []byte(in)) {
				fast++
			}
		})
	}
	assert.GreaterOrEqual(t, fast, 7, "the fast path took too few of the seeds")
}

func TestFastDecodeFetchRequest(t *testing.T) {
	fast := 0
	for _, in := range fetchSeeds {
		t.Run(in, func(t *testing.T) {
			if checkFetchRequest(t, []byte(in)) {
				fast++
			}
		})
	}
	assert.GreaterOrEqual(t, fast, 7, "the fast path took too few of the seeds")
}

func FuzzFastDecodeConsumeRequest(f *testing.F) {
	fuzzDecoder(f, consumeSeeds, checkConsumeRequest)
}

func FuzzFastDecodeFetchRequest(f *testing.F) {
	fuzzDecoder(f, fetchSeeds, checkFetchRequest)
}

// checkConsumeRequest reports whether the fast path took in, failing t if
// it took it differently from encoding/json.
func checkConsumeRequest(t *testing.T, in []byte) bool {
	got, ok := DecodeConsumeRequest(in)
	var want ConsumeRequest
	err := json.Unmarshal(in, &want)
	if !ok {
		return false
	}
	require.NoError(t, err, "the fast path took a body encoding/json refuses")
	assert.Equal(t, want, got)
	return true
}

func checkFetchRequest(t *testing.T, in []byte) bool {
	got, ok := DecodeFetchRequest(in)
	var want FetchRequest
	err := json.Unmarshal(in, &want)
	if !ok {
		return false
	}
	require.NoError(t, err, "the fast path took a body encoding/json refuses")
	// Records (encoding/json never sets it) is checked against
	// DecodeTopicMessages, itself checked against encoding/json.
	checkCarriedRecords(t, got.Produce, got.Records)
	got.Records = nil
	assert.Equal(t, want, got)
	return true
}

// The request encoders write what encoding/json writes (without HTML
// escaping) of the same request.
func TestAppendRequests(t *testing.T) {
	std := func(v any) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(v))
		return strings.TrimSuffix(b.String(), "\n")
	}
	for _, topics := range [][]string{{"a"}, {"a", "b<&>\u2028\"\\"}, {"\xff"}} {
		for _, ms := range []int64{0, 1, 5000, 300000} {
			f := float64(ms)
			assert.Equal(t, std(ConsumeRequest{Topics: topics, Timeout: &f}), string(AppendConsumeRequest(nil, topics, ms)))
			offs := []int64{0, 7, 1 << 40}
			req := FetchRequest{Timeout: &f, TopicPartitionOffsets: make([]TopicPartitionOffset, len(offs))}
			for p := range offs {
				pp := int32(p)
				req.TopicPartitionOffsets[p] = TopicPartitionOffset{Topic: topics[0], Partition: &pp, Offset: &offs[p]}
			}
			assert.Equal(t, std(req), string(AppendFetchRequest(nil, topics[0], offs, ms)))
		}
	}
}
