package restwire

import "testing"

// A record's header values that are neither well known nor interned share
// one allocation; each keeps its own value, a repeated "value" keeps the
// last as in encoding/json, and on both sides the result equals
// encoding/json's.
func TestSharedHeaderValues(t *testing.T) {
	consumed := `[{"topic":"t","partition":0,"offset":1,"timestamp":1,"key":"","value":"v","headers":[` +
		`{"key":"a","value":"0190d5b2-7c1e-7a55-9c1d-000000000001"},{"key":"rpc-v","value":"1"},` +
		`{"key":"b","value":"x\"y"},{"key":"c","value":"first","value":"reply"},{"key":"d","value":"1","value":"last"}]},` +
		`{"topic":"t","partition":0,"offset":2,"timestamp":1,"key":"","value":"w","headers":[{"key":"e","value":"é"}]}]`
	msgs, err := DecodeMessages([]byte(consumed))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Header{
		{{"a", "0190d5b2-7c1e-7a55-9c1d-000000000001"}, {"rpc-v", "1"}, {"b", `x"y`}, {"c", "reply"}, {"d", "last"}},
		{{"e", "é"}},
	}
	for i, m := range msgs {
		if len(m.Headers) != len(want[i]) {
			t.Fatalf("record %d: %d headers, want %d", i, len(m.Headers), len(want[i]))
		}
		for j, h := range m.Headers {
			if h.Key != want[i][j].Key || h.Value != want[i][j].Value {
				t.Errorf("record %d header %d = %q:%q, want %q:%q", i, j, h.Key, h.Value, want[i][j].Key, want[i][j].Value)
			}
		}
	}
	checkMessages(t, []byte(consumed))

	produce := `[{"topic":"t","value":"v","headers":[{"key":"a","value":"id-1234567890-1234567890-1234567890"},` +
		`{"key":"b","value":"q","value":"rpc-v"},{"key":"c","value":"z"}]}]`
	if !checkTopicMessages(t, []byte(produce)) {
		t.Fatal("fast path gave up")
	}
}
