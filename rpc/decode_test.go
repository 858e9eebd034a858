package rpc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type decodeProbe struct {
	ID   int      `json:"id"`
	Name string   `json:"name"`
	Tags []string `json:"tags,omitempty"`
}

// TestDecodeTypedMatchesUnmarshal: the pooled decoder gives json.Unmarshal's
// result and error for every payload, good or bad, and a bad payload does
// not spoil the next good one.
func TestDecodeTypedMatchesUnmarshal(t *testing.T) {
	cases := []string{
		`{"id":1,"name":"report"}`,
		`  {"id":2,"name":"x","tags":["a","b"]}  ` + "\n",
		`{"id":3}}`,
		`{"id":4} {"id":5}`,
		`{"id":6} x`,
		`{"id":"seven"}`,
		`{"id":8,"name":`,
		`[1,2]`,
		`null`,
		`12`,
		``,
		`   `,
		`{"id":9,"name":"\u00e9\ud83d\ude00"}`,
		`{"id":10,"name":"` + strings.Repeat("z", maxPooledDecode) + `"}`,
		"{\"id\":11,\"name\":\"\xff\"}",
		`{"id":12,"name":"ok"}]`,
	}
	for range 3 { // the pool hands the same decoder back: errors must not stick
		for _, in := range cases {
			var want decodeProbe
			wantErr := json.Unmarshal([]byte(in), &want)
			got, gotErr := decodeTyped[decodeProbe]([]byte(in))
			require.Equal(t, want, got, "payload %.40q", in)
			if wantErr == nil {
				require.NoError(t, gotErr, "payload %.40q", in)
			} else {
				require.EqualError(t, gotErr, wantErr.Error(), "payload %.40q", in)
			}
		}
	}
	n, err := decodeTyped[int]([]byte(`42`))
	require.NoError(t, err)
	require.Equal(t, 42, n)
	m, err := decodeTyped[map[string]int]([]byte(`{"a":1}`))
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a": 1}, m)
	v, err := decodeTyped[any]([]byte(`{"a":[1,"x"]}`))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"a": []any{1.0, "x"}}, v)
	// A RawMessage is copied out of the decoder's buffer, which the next
	// decode overwrites.
	raw, err := decodeTyped[json.RawMessage]([]byte(`{"keep":"me"}`))
	require.NoError(t, err)
	_, err = decodeTyped[json.RawMessage]([]byte(`{"other":"value!"}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"keep":"me"}`, string(raw))
}

// TestDecodeTyped: a value decoded through the target pool is the caller's
// own; the next decode of the same type starts from zero.
func TestDecodeTyped(t *testing.T) {
	a, err := decodeTyped[decodeProbe]([]byte(`{"id":1,"name":"a","tags":["x"]}`))
	require.NoError(t, err)
	b, err := decodeTyped[decodeProbe]([]byte(`{"id":2}`))
	require.NoError(t, err)
	require.Equal(t, decodeProbe{ID: 1, Name: "a", Tags: []string{"x"}}, a)
	require.Equal(t, decodeProbe{ID: 2}, b, "nothing of the previous value leaks into the next")
	_, err = decodeTyped[decodeProbe]([]byte(`{"id":"no"}`))
	require.Error(t, err)
}

func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(`{"id":1,"name":"report"}`)
	b.Run("Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v decodeProbe
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeTyped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeTyped[decodeProbe](data); err != nil {
				b.Fatal(err)
			}
		}
	})
	// flat: the same payload into a struct without the slice, the shape of
	// the rpc benchmarks' benchReq.
	b.Run("decodeTyped/flat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeTyped[decodeFlat](data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// decodeFlat is decodeProbe without its slice.
type decodeFlat struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// countingField counts its UnmarshalJSON calls and refuses "bad".
type countingField struct{}

var countingCalls int

func (f *countingField) UnmarshalJSON(b []byte) error {
	countingCalls++
	if string(b) == `"bad"` {
		return errors.New("countingField: bad")
	}
	return nil
}

type countingProbe struct {
	ID int           `json:"id"`
	F  countingField `json:"f"`
}

// A payload whose decoding fails after it was read whole (a field's
// UnmarshalJSON refuses it, a type mismatch) runs each UnmarshalJSON once,
// as json.Unmarshal does, with json.Unmarshal's error and result: it is not
// decoded a second time to get them. A payload that is not valid JSON runs
// none (both check the value whole first), except that a value followed by
// more than whitespace is decoded before the rest is seen: once, where
// json.Unmarshal runs none.
func TestDecodeTypedRunsUnmarshalJSONOnce(t *testing.T) {
	for _, tc := range []struct {
		in       string
		calls    int
		ourCalls int
	}{
		{`{"id":1,"f":"bad"}`, 1, 1},
		{`{"id":"x","f":"ok"}`, 1, 1},
		{`{"id":2,"f":"ok"}`, 1, 1},
		{`{"id":3,"f":"bad"`, 0, 0},
		{`{"id":4,"f":"bad"} x`, 0, 1},
	} {
		countingCalls = 0
		var want countingProbe
		wantErr := json.Unmarshal([]byte(tc.in), &want)
		require.Equal(t, tc.calls, countingCalls, "json.Unmarshal of %s", tc.in)
		countingCalls = 0
		got, err := decodeTyped[countingProbe]([]byte(tc.in))
		require.Equal(t, tc.ourCalls, countingCalls, "decodeTyped of %s", tc.in)
		require.Equal(t, want, got, tc.in)
		if wantErr == nil {
			require.NoError(t, err, tc.in)
		} else {
			require.EqualError(t, err, wantErr.Error(), tc.in)
		}
	}
}
