package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// The break-it pass on decodePooled keeping the pooled decoder's error
// (e52c1d1): a type's UnmarshalJSON must run as often as under
// json.Unmarshal, for payloads ending with whitespace too (a json.Encoder
// writes a newline after every value), and a decoder pooled again after an
// error must decode the next payload exactly as json.Unmarshal does, error
// included (its type, field path and offset).

// b15Counted counts its UnmarshalJSON calls, refuses "bad" and keeps what it
// got (copied, as encoding/json requires).
type b15Counted struct{ Got string }

var b15Calls atomic.Int64

func (c *b15Counted) UnmarshalJSON(b []byte) error {
	b15Calls.Add(1)
	if string(b) == `"bad"` {
		return errors.New("b15Counted: bad")
	}
	c.Got = string(b)
	return nil
}

type b15Probe struct {
	ID int        `json:"id"`
	F  b15Counted `json:"f"`
}

// Payloads that are one valid value followed by whitespace only: json.Unmarshal
// takes them, and runs each UnmarshalJSON once. So must decodeTyped.
func TestBreak15DecodeTrailingWhitespaceRunsUnmarshalJSONOnce(t *testing.T) {
	for _, in := range []string{
		"{\"id\":1,\"f\":\"ok\"}\n", "{\"id\":1,\"f\":\"bad\"}\n", "{\"id\":\"x\",\"f\":\"ok\"}\n",
		"{\"f\":\"ok\"} \t\r\n ", " {\"f\":\"ok\"}\n", "{\"f\":\"ok\"}",
	} {
		b15Calls.Store(0)
		var want b15Probe
		wantErr := json.Unmarshal([]byte(in), &want)
		require.EqualValues(t, 1, b15Calls.Load(), "json.Unmarshal of %q", in)
		b15Calls.Store(0)
		got, err := decodeTyped[b15Probe]([]byte(in))
		require.EqualValues(t, 1, b15Calls.Load(), "decodeTyped of %q runs UnmarshalJSON as often as json.Unmarshal", in)
		require.Equal(t, want, got, in)
		require.Equal(t, wantErr, err, in)
	}
}

// b15Deep nests a failing UnmarshalJSON and type mismatches at several
// depths, so that an error carries a field path (and an offset) the next
// use of the same decoder must not inherit.
type b15Deep struct {
	A struct {
		B []struct {
			C b15Counted `json:"c"`
			N int        `json:"n"`
		} `json:"b"`
	} `json:"a"`
	M   map[string]b15Counted `json:"m"`
	S   int                   `json:"s,string"`
	Any any                   `json:"any"`
	T   b14Text               `json:"t"`
}

var b15Seq = []string{
	`{"a":{"b":[{"n":1},{"c":"bad"}]}}`,
	`{"s":"5"}`,
	`{"a":{"b":[{"n":"x"}]},"s":"5"}`,
	`{"m":{"k":"bad"}}`,
	`{"s":5}`,
	`{"t":"bad"}`,
	`{"a":{"b":[{"n":1.5}]}}`,
	`{"a":{"b":[{"c":"ok","n":2}]},"m":{"k":"ok"},"any":[1,{"x":null}],"t":"y"}`,
	"\n\t {\"a\":{\"b\":[{\"n\":true}]}}",
	"{\"a\":{\"b\":[{\"n\":true}]}}\n",
	`{"a":{"b":{}}}`,
	`{"a":{"b":[{"n":1}]}} x`,
	`{"a":{"b":[{"n":1}]}}}`,
	`{"a":{"b":[{"n":"y"}]}}`,
	`7`, `null`, `"s"`, `[1]`, "\"\xff\"", "{\"any\":\"\xff\"}", `{"any":1e999}`,
}

// Errors and successes interleaved, in every order, on many goroutines: a
// decoder pooled again after an error decodes the next payload as
// json.Unmarshal does (b14Diff compares the error's type and every field).
func TestBreak15DecodeErrorThenReuse(t *testing.T) {
	check := func(in string) error {
		if err := b14Diff[b15Deep]([]byte(in)); err != nil {
			return err
		}
		return b14Diff[b14Special]([]byte(in))
	}
	for i := range b15Seq {
		for j := range b15Seq {
			for _, in := range []string{b15Seq[i], b15Seq[j], b15Seq[i]} {
				require.NoError(t, check(in))
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range 300 {
				if err := check(b15Seq[(g*7+k*3)%len(b15Seq)]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Every payload of the earlier passes, with whitespace before and after it,
// against types without a plan: the value and the error are json.Unmarshal's.
func TestBreak15DecodeWhitespaceAround(t *testing.T) {
	for _, in := range append(append([]string(nil), b14Inputs...), b15Seq...) {
		if len(in) > 4096 {
			continue
		}
		for _, ws := range []string{"\n", " \r\n\t", "\t"} {
			for _, p := range []string{in + ws, ws + in, ws + in + ws} {
				if err := b14Diff[b14Special]([]byte(p)); err != nil {
					t.Fatal(err)
				}
				if err := b14Diff[b15Deep]([]byte(p)); err != nil {
					t.Fatal(err)
				}
				if err := b14Diff[map[string]any]([]byte(p)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// A top-level value of each plan-less kind, reused through the pool.
func TestBreak15DecodeTopLevelKinds(t *testing.T) {
	ins := []string{`1`, `1.5`, `-0`, `1e999`, `"x"`, `true`, `null`, `[1,"a"]`, `{"a":1}`, `{"A":1,"a":2}`,
		"1\n", " \"x\" ", `12345678901234567890`, `"2020-01-02T03:04:05Z"`, `"\u00e9"`, `[]`, `{}`}
	for range 2 {
		for _, in := range ins {
			for _, f := range []func([]byte) error{
				b14Diff[any], b14Diff[json.Number], b14Diff[json.RawMessage], b14Diff[map[string]int],
				b14Diff[[]any], b14Diff[*int], b14Diff[b14Text], b14Diff[b14JSONPtr], b14Diff[[2]string],
				b14Diff[interface{ M() }], b14Diff[struct{ A, B int }], b14Diff[fmt.Stringer],
			} {
				if err := f([]byte(in)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkBreak15DecodeNewline decodes a plan-less payload as a
// json.Encoder writes it, with its newline.
func BenchmarkBreak15DecodeNewline(b *testing.B) {
	in := []byte("{\"id\":1,\"at\":\"2026-12-03T06:00:00Z\",\"m\":{\"a\":1},\"raw\":[1]}\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeTyped[decodeNoPlan](in); err != nil {
			b.Fatal(err)
		}
	}
}
