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

// A produce record's key, header values and value share one allocation,
// the value last: appending to the value, or writing its bytes, leaves the
// key and the header values as they were, on both ends (the client keeps
// long keys and header values on its answer's arena, beside the values).
func TestRecordBytesStayApart(t *testing.T) {
	produce := `[{"topic":"t","key":"k\"ey","value":"v\\al","headers":[{"key":"a","value":"x\"1234567890"},{"key":"b","value":"plain-but-not-known"}]},` +
		`{"topic":"t","key":"second","value":"","headers":[]}]`
	items, ok := DecodeTopicMessages([]byte(produce))
	if !ok {
		t.Fatal("fast path gave up")
	}
	v := items[0].Value.Bytes
	if cap(v) != len(v) {
		t.Fatalf("value slice has room beyond it: len %d cap %d", len(v), cap(v))
	}
	_ = append(v, "XXXXXXXXXXXXXXXXXXXX"...)
	for i := range v {
		v[i] = 'Z'
	}
	if items[0].Key != `k"ey` || items[0].Headers[0].Value != `x"1234567890` || items[0].Headers[1].Value != "plain-but-not-known" {
		t.Fatalf("strings changed with the value: %q %q", items[0].Key, items[0].Headers)
	}
	if items[1].Value.Bytes == nil || len(items[1].Value.Bytes) != 0 || items[1].Headers == nil {
		t.Fatalf("second record: value %v headers %v", items[1].Value.Bytes, items[1].Headers)
	}

	long := "0190d5b2-7c1e-7a55-9c1d-000000000001-long-key"
	consumed := `[{"topic":"t","partition":0,"offset":1,"timestamp":1,"key":"` + long + `","value":"v1",` +
		`"headers":[{"key":"a","value":"` + long + `x"}]},{"topic":"t","partition":0,"offset":2,"timestamp":1,"key":"","value":"v\"2","headers":[]}]`
	msgs, err := DecodeMessages([]byte(consumed))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if cap(m.Value) != len(m.Value) {
			t.Fatalf("value slice has room beyond it: len %d cap %d", len(m.Value), cap(m.Value))
		}
		_ = append(m.Value, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
		for i := range m.Value {
			m.Value[i] = 'Z'
		}
	}
	if msgs[0].Key != long || msgs[0].Headers[0].Value != long+"x" {
		t.Fatalf("strings changed with the values: %q %q", msgs[0].Key, msgs[0].Headers)
	}
}
