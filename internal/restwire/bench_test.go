package restwire

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/transport"
)

// benchRecords are 100 records as the rpc layer makes them: a key, a small
// JSON value with escapes, two headers.
func benchRecords() []transport.Message {
	msgs := make([]transport.Message, 100)
	for i := range msgs {
		msgs[i] = transport.Message{Topic: "replies", Partition: int32(i % 8), Offset: int64(i), Time: time.UnixMilli(1_700_000_000_000),
			Key: fmt.Sprintf("key-%d", i), Value: []byte(`{"report":"monthly","path":"a\\b","rows":1234,"note":"` + strings.Repeat("v", 80) + `"}`),
			Headers: []transport.Header{{Key: "rpc-v", Value: "1"}, {Key: "rpc-id", Value: fmt.Sprintf("0190d5b2-7c1e-7a55-9c1d-%012d", i)}}}
	}
	return msgs
}

// rpcRecords are 100 records shaped as the rpc layer's replies and dedup
// markers: a key, a small JSON value, the envelope's headers.
func rpcRecords() []transport.Message {
	msgs := make([]transport.Message, 100)
	for i := range msgs {
		id := fmt.Sprintf("01a236db-baac-72eb-b885-%012d", i)
		hs := []transport.Header{{Key: "rpc-v", Value: "1"}, {Key: "rpc-id", Value: fmt.Sprintf("01a236db-bab5-7f30-9801-%012d", i)},
			{Key: "rpc-kind", Value: "reply"}, {Key: "rpc-from", Value: "bench-srv"}, {Key: "rpc-correlation-id", Value: id},
			{Key: "content-type", Value: "application/json"}}
		if i%2 == 0 {
			hs = append(hs, transport.Header{Key: "rpc-dedup-by", Value: "84694678-d3df-40a3-bb06-79f5cd4b2efc"},
				transport.Header{Key: "rpc-dedup-of", Value: id}, transport.Header{Key: "rpc-dedup-reply-to", Value: "bench-cli.replies"})
		}
		msgs[i] = transport.Message{Topic: "bench-cli.replies", Partition: int32(i % 4), Offset: int64(i), Time: time.UnixMilli(1_700_000_000_000),
			Key: id, Value: []byte(fmt.Sprintf(`{"id":%d,"report":"warm-up","rows":0}`, i)), Headers: hs}
	}
	return msgs
}

func appendArray(msgs []transport.Message, each func([]byte, *transport.Message) []byte) []byte {
	return appendArrayTo(nil, msgs, each)
}

// appendArrayTo appends the array of msgs, each encoded by each, to b.
func appendArrayTo(b []byte, msgs []transport.Message, each func([]byte, *transport.Message) []byte) []byte {
	b = append(b, '[')
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = each(b, &msgs[i])
	}
	return append(b, ']')
}

// BenchmarkWire measures the four hot paths on 100 records: the server
// reading a produce body and writing a consume answer, the client writing
// a produce body and reading a consume answer.
func BenchmarkWire(b *testing.B) {
	benchWire(b, benchRecords())
}

// BenchmarkWireRPC is BenchmarkWire on records shaped as rpc replies and
// dedup markers (see rpcRecords).
func BenchmarkWireRPC(b *testing.B) {
	benchWire(b, rpcRecords())
}

func benchWire(b *testing.B, msgs []transport.Message) {
	produce, consumed := appendArray(msgs, AppendTopicMessage), appendArray(msgs, AppendConsumed)
	buf := make([]byte, 0, max(len(produce), len(consumed)))
	for _, bb := range []struct {
		name string
		size int
		run  func() bool
	}{
		{"DecodeTopicMessages", len(produce), func() bool { _, ok := DecodeTopicMessages(produce); return ok }},
		{"DecodeMessages", len(consumed), func() bool { _, ok := decodeMessagesFast(consumed); return ok }},
		{"AppendConsumed", len(consumed), func() bool { return len(appendArray(msgs, AppendConsumed)) == len(consumed) }},
		{"AppendTopicMessage", len(produce), func() bool { return len(appendArray(msgs, AppendTopicMessage)) == len(produce) }},
		// the encoders alone, into a buffer that has room
		{"AppendConsumedReused", len(consumed), func() bool {
			buf = appendArrayTo(buf[:0], msgs, AppendConsumed)
			return len(buf) == len(consumed)
		}},
		{"AppendTopicMessageReused", len(produce), func() bool {
			buf = appendArrayTo(buf[:0], msgs, AppendTopicMessage)
			return len(buf) == len(produce)
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(bb.size))
			b.ReportAllocs()
			cpu := testutil.ProcessCPU()
			for b.Loop() {
				if !bb.run() {
					b.Fatal("not on the fast path")
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkCarriedConsume measures the server reading a consume body that
// carries 16 rpc-shaped records to produce: in one pass (the records
// decoded with the body), and as before, the "produce" value checked with
// the body and then decoded on its own (twoPass).
func BenchmarkCarriedConsume(b *testing.B) {
	body := AppendConsumeRequest(nil, []string{"bench.requests"}, 1000)
	body = append(body[:len(body)-1], `,"produce":`...) // without its closing brace
	body = append(append(body, appendArray(rpcRecords()[:16], AppendTopicMessage)...), '}')
	for _, bb := range []struct {
		name string
		run  func() int
	}{
		{"onePass", func() int {
			req, ok := DecodeCarryingConsumeRequest(body)
			if !ok || req.Records == nil {
				return 0
			}
			return len(req.Records)
		}},
		{"twoPass", func() int {
			raw, ok := twoPassProduce(body)
			if !ok {
				return 0
			}
			items, _ := DecodeTopicMessages(raw)
			return len(items)
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if bb.run() != 16 {
					b.Fatal("not on the fast path")
				}
			}
		})
	}
}

// twoPassProduce is the consume body's decoding before the carried
// records were decoded in its pass: "produce" checked and kept raw.
func twoPassProduce(body []byte) (json.RawMessage, bool) {
	var req CarryingConsumeRequest
	d := decoder{b: body}
	d.ws()
	ok := d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "topics":
			req.Topics, ok = d.strings(req.Topics[:0])
		case "timeout":
			req.Timeout, ok = d.timeout()
		case "produce":
			req.Produce, ok = d.rawValue()
		}
		return ok
	})
	return req.Produce, ok && d.end()
}

// benchStrings are strings as the REST wire carries them: a header key,
// a header value (a UUID), a small JSON payload (quotes to escape), a long ASCII value, a
// non-ASCII one.
var benchStrings = []struct{ name, s string }{
	{"short5", "rpc-v"},
	{"uuid36", "0190d5b2-7c1e-7a55-9c1d-000000000001"},
	{"json24", `{"id":1,"name":"report"}`},
	{"ascii300", strings.Repeat("The quick brown fox jumps over the lazy dog; ", 7)[:300]},
	{"nonASCII", "Grüße aus Köln — 東京の天気は晴れ; café, naïve résumé ✓"},
}

// BenchmarkAppendString measures AppendString on benchStrings, in both
// escaping modes, as a string and as a []byte.
func BenchmarkAppendString(b *testing.B) {
	for _, c := range benchStrings {
		for _, e := range []struct {
			name string
			e    Escaping
		}{{"server", EscapeServer}, {"client", EscapeClient}} {
			b.Run(c.name+"/"+e.name+"/string", func(b *testing.B) {
				buf := make([]byte, 0, 2*len(c.s)+16)
				b.SetBytes(int64(len(c.s)))
				b.ReportAllocs()
				cpu := testutil.ProcessCPU()
				for b.Loop() {
					buf = AppendString(buf[:0], c.s, e.e)
				}
				reportCPU(b, cpu)
			})
			b.Run(c.name+"/"+e.name+"/bytes", func(b *testing.B) {
				s, buf := []byte(c.s), make([]byte, 0, 2*len(c.s)+16)
				b.SetBytes(int64(len(c.s)))
				b.ReportAllocs()
				cpu := testutil.ProcessCPU()
				for b.Loop() {
					buf = AppendString(buf[:0], s, e.e)
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// BenchmarkDecodeString measures the decoder's string scans on
// benchStrings as the server encodes them: strView (escapes unescaped onto
// the arena), and rawString (a field name) where the string is one.
func BenchmarkDecodeString(b *testing.B) {
	for _, c := range benchStrings {
		body := AppendString(nil, c.s, EscapeServer)
		n := len(body)
		body = append(body, `,"next":0}`...) // as in a body: more JSON after the string
		b.Run(c.name+"/strView", func(b *testing.B) {
			d := decoder{b: body, arena: make([]byte, 0, len(body))}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			cpu := testutil.ProcessCPU()
			for b.Loop() {
				d.i, d.arena = 0, d.arena[:0]
				if _, ok := d.strView(); !ok {
					b.Fatal("not decoded")
				}
			}
			reportCPU(b, cpu)
		})
		if n != len(c.s)+2 || !isASCII(c.s) {
			continue // escapes or non-ASCII: not a field name
		}
		b.Run(c.name+"/rawString", func(b *testing.B) {
			d := decoder{b: body}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			cpu := testutil.ProcessCPU()
			for b.Loop() {
				d.i = 0
				if _, ok := d.rawString(); !ok {
					b.Fatal("not decoded")
				}
			}
			reportCPU(b, cpu)
		})
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// reportCPU reports the process's CPU time per operation since cpu (see
// testutil.ProcessCPU): on a shared machine it varies less than ns/op.
func reportCPU(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(testutil.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
