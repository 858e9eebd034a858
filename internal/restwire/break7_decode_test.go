package restwire

import "testing"

// Hostile bodies against the hand-written request decoders: each either
// gives up (encoding/json then decides) or decodes exactly as
// encoding/json does. A member given twice is the sharp case:
// encoding/json decodes the second array into the first's elements, so a
// field the second element lacks keeps the first's value.

var break7Produce = []string{
	`{"headers":[{"key":"a","value":"1"}],"headers":[{"key":"b"}]}`,
	`{"headers":[{"key":"a","value":"1"}],"headers":[{"value":"2"}]}`,
	`[{"topic":"t","value":"v","headers":[{"key":"a","value":"long-value-not-interned-xxxxxxxxxxxxxxxxxxxx"}],"headers":[{"key":"b"}]}]`,
	`{"headers":[{"key":"a","value":"1"},{"key":"c","value":"3"}],"headers":[{"key":"b"}]}`,
	`{"headers":[{"key":"a","value":"1"}],"headers":[]}`,
	`{"headers":[{"key":"a","value":"1"}],"headers":[{}]}`,
	`{"value":"x","value":"y"}`, `{"topic":"a","topic":"b"}`, `{"TOPIC":"a"}`, `{"topic":"\u0000"}`,
	`{"headers":[{"key":"a","value":"x","value":"y-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}]}`,
	`{"headers":[{"value":"x-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","key":"k","value":"y"}]}`,
	`{"value":"\u2028\u2029\ufeff"}`, `{"value":"\uFFFF"}`, `{"value":"\u0000"}`,
	`{"partition":-0,"partition":1}`, `{"timestamp":1e400}`, `{"partition":99999999999999999999999}`,
	`{"value":"a"}   ` + "\n\t\r", `{"value":"a"}` + "\x00", `{"value" :"a" , "key": "b"}`,
}

var break7Consume = []string{
	`{"topics":["a","b"],"topics":["c"]}`, `{"topic":"a","topic":"b"}`, `{"timeout":-0}`,
	`{"timeout":0,"timeout":null}`, `{"topics":["a"],"topics":null}`, `{"TIMEOUT":5}`,
	`{"timeout":9007199254740992}`, `{"timeout":-9007199254740992}`, `{"timeout":100000000000000000000}`,
	`{"topics":["a",null]}`, `{"topics":[["a"]]}`, `{"topics":{"a":1}}`, `{"topicſ":["a"]}`,
	`{"topics":["\ud800"]}`, `{"topics":["a\u0000b"]}`,
}

var break7Fetch = []string{
	`{"topicPartitionOffsets":[{"topic":"a","partition":1,"offset":5}],"topicPartitionOffsets":[{"topic":"b"}]}`,
	`{"topicPartitionOffsets":[{"topic":"a","partition":1,"offset":5}],"topicPartitionOffsets":[{"offset":6}]}`,
	`{"topicPartitionOffsets":[{"topic":"a","partition":1,"offset":5},{"topic":"a","partition":2,"offset":5}],"topicPartitionOffsets":[{"topic":"b","partition":0,"offset":0}]}`,
	`{"topicPartitionOffsets":[{"topic":"a","partition":1,"offset":5}],"topicPartitionOffsets":[]}`,
	`{"partition":1,"partition":null}`, `{"offset":-9223372036854775808}`, `{"offset":-9223372036854775809}`,
	`{"topic":"a","topic":"b","partition":0,"offset":0}`, `{"topicPartitionOffsets":[{"Topic":"a"}]}`,
}

func TestBreak7RequestDecodersMatchEncodingJSON(t *testing.T) {
	for _, in := range break7Produce {
		t.Run("produce/"+in, func(t *testing.T) { checkTopicMessages(t, []byte(in)) })
	}
	for _, in := range break7Consume {
		t.Run("consume/"+in, func(t *testing.T) { checkConsumeRequest(t, []byte(in)) })
	}
	for _, in := range break7Fetch {
		t.Run("fetch/"+in, func(t *testing.T) { checkFetchRequest(t, []byte(in)) })
	}
}
