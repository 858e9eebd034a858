package restwire

import (
	"fmt"
	"strings"
	"testing"
	"time"

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

func appendArray(msgs []transport.Message, each func([]byte, *transport.Message) []byte) []byte {
	b := []byte{'['}
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = each(b, &msgs[i])
	}
	return append(b, ']')
}

// BenchmarkDecodeTopicMessages is the server reading a produce body of 100
// records.
func BenchmarkDecodeTopicMessages(b *testing.B) {
	body := appendArray(benchRecords(), AppendTopicMessage)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := DecodeTopicMessages(body); !ok {
			b.Fatal("not on the fast path")
		}
	}
}

// BenchmarkDecodeMessages is the client reading a consume answer of 100
// records.
func BenchmarkDecodeMessages(b *testing.B) {
	body := appendArray(benchRecords(), AppendConsumed)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := decodeMessagesFast(body); !ok {
			b.Fatal("not on the fast path")
		}
	}
}

// BenchmarkAppendConsumed is the server writing a consume answer of 100
// records.
func BenchmarkAppendConsumed(b *testing.B) {
	msgs := benchRecords()
	buf := appendArray(msgs, AppendConsumed)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendArray(msgs, AppendConsumed)[:0]
	}
}

// BenchmarkAppendTopicMessage is the client writing a produce body of 100
// records.
func BenchmarkAppendTopicMessage(b *testing.B) {
	msgs := benchRecords()
	buf := appendArray(msgs, AppendTopicMessage)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendArray(msgs, AppendTopicMessage)[:0]
	}
}
