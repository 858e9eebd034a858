package restwire

import (
	"math/bits"
	"strconv"
	"unicode/utf8"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Hand-written encoders of the hot bodies, in the documented field order,
// without reflection.

// Escaping says how AppendString writes what JSON can carry more than one
// way; see the package doc.
type Escaping uint8

const (
	// EscapeServer writes what encoding/json writes without HTML escaping:
	// invalid UTF-8 becomes \ufffd, U+2028 and U+2029 are escaped. For any
	// bytes.
	EscapeServer Escaping = iota
	// EscapeClient escapes only '"', '\\' and control characters, with the
	// short forms where JSON has them, so the project's server reads the
	// string on its fast path. For valid UTF-8 only: other bytes pass
	// through unchanged.
	EscapeClient
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as e says.
func AppendString[T string | []byte](b []byte, s T, e Escaping) []byte {
	b = append(b, '"')
	// Bytes of these classes (see strClass) need a look: '"', '\\' and
	// control characters always, a byte of a multi-byte sequence unless
	// e is EscapeClient.
	look, high := uint8(classStop|classHigh), uint64(swarMSB)
	if e == EscapeClient {
		look, high = classStop, 0
	}
	start := 0
	for i := 0; i < len(s); {
		// Find the next such byte: eight bytes at a time (see
		// stopBytes), escaping the word's ASCII ones in turn, the last
		// few bytes one at a time.
		if i+8 <= len(s) {
			m := stopBytes(load64(s, i), high)
			for ; m != 0; m &= m - 1 {
				j := i + bits.TrailingZeros64(m)>>3
				if s[j] >= utf8.RuneSelf {
					break // EscapeServer: a multi-byte sequence, below
				}
				b = append(b, s[start:j]...)
				b = appendEscape(b, s[j])
				start = j + 1
			}
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(s) && strClass[s[i]]&look == 0 {
				i++
			}
			if i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf || e == EscapeClient {
			b = append(b, s[start:i]...)
			b = appendEscape(b, c)
			i++
			start = i
			continue
		}
		// EscapeServer at a multi-byte sequence: take it and the ones
		// right after it (non-ASCII text) before scanning again.
		for i < len(s) && s[i] >= utf8.RuneSelf {
			// A valid two-byte sequence, or three-byte one whose
			// lead byte admits any continuation byte after it
			// (E1-EC, EE, EF: not E2 either, which U+2028 and U+2029
			// start with), is taken as it is, without decoding.
			switch c := s[i]; {
			case c >= 0xc2 && c < 0xe0 && i+1 < len(s) && s[i+1]&0xc0 == 0x80:
				i += 2
				continue
			case c >= 0xe1 && c < 0xf0 && c != 0xe2 && c != 0xed && i+2 < len(s) && s[i+1]&0xc0 == 0x80 && s[i+2]&0xc0 == 0x80:
				i += 3
				continue
			}
			var r rune
			var size int
			switch v := any(s).(type) {
			case string:
				r, size = utf8.DecodeRuneInString(v[i:])
			case []byte:
				r, size = utf8.DecodeRune(v[i:])
			}
			switch {
			case r == utf8.RuneError && size == 1:
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				start = i + size
			case r == '\u2028' || r == '\u2029':
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
				start = i + size
			}
			i += size
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscape appends the escape of c, which is '"', '\\' or a control
// character.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// AppendMetadata appends m's Metadata object of §3.1, as the server answers
// a produce.
func AppendMetadata(b []byte, m *transport.Message) []byte {
	return append(appendRecordHead(b, m), '}')
}

// AppendConsumed appends m's ConsumedMessage object of §4.3, as the server
// answers a consume or fetch: key "" when the record has none, headers []
// when it has none.
func AppendConsumed(b []byte, m *transport.Message) []byte {
	b = appendRecordHead(b, m)
	b = append(b, `,"key":`...)
	b = AppendString(b, m.Key, EscapeServer)
	b = append(b, `,"value":`...)
	b = AppendString(b, m.Value, EscapeServer)
	b = append(b, `,"headers":[`...)
	b = appendHeaders(b, m.Headers, EscapeServer)
	return append(b, "]}"...)
}

// appendRecordHead appends the fields that Metadata and ConsumedMessage
// begin with, leaving the object open: {"topic":..,"partition":..,
// "offset":..,"timestamp":..
func appendRecordHead(b []byte, m *transport.Message) []byte {
	b = appendTopicPartition(b, m.Topic, m.Partition)
	b = append(b, `,"offset":`...)
	b = appendInt(b, m.Offset)
	b = append(b, `,"timestamp":`...)
	return appendInt(b, m.Time.UnixMilli())
}

// appendTopicPartition appends {"topic":..,"partition":.., leaving the
// object open.
func appendTopicPartition(b []byte, topic string, partition int32) []byte {
	b = append(b, `{"topic":`...)
	b = AppendString(b, topic, EscapeServer)
	b = append(b, `,"partition":`...)
	return appendInt(b, int64(partition))
}

// appendHeaders appends the elements of a headers array.
func appendHeaders(b []byte, hs []transport.Header, e Escaping) []byte {
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = AppendString(b, h.Key, e)
		b = append(b, `,"value":`...)
		b = AppendString(b, h.Value, e)
		b = append(b, '}')
	}
	return b
}

// AppendTopicPartitionOffset appends
// {"topic":..,"partition":..,"offset":..}, as the server answers committed
// and offsets.
func AppendTopicPartitionOffset(b []byte, topic string, partition int32, offset int64) []byte {
	b = appendTopicPartition(b, topic, partition)
	b = append(b, `,"offset":`...)
	b = appendInt(b, offset)
	return append(b, '}')
}

// AppendTopicMessage appends m as one TopicMessage, as the client produces
// it: what encoding/json makes of the TopicMessage (partition only when
// m.ManualPartition, timestamp only when m.Time is set, key only when not
// empty, headers only when there are some), minus its escaping of U+2028 and
// U+2029. m must be valid: every string UTF-8 (EscapeClient).
func AppendTopicMessage(b []byte, m *transport.Message) []byte {
	b = append(b, `{"topic":`...)
	b = AppendString(b, m.Topic, EscapeClient)
	if m.ManualPartition {
		b = append(b, `,"partition":`...)
		b = appendInt(b, int64(m.Partition))
	}
	if !m.Time.IsZero() {
		b = append(b, `,"timestamp":`...)
		b = appendInt(b, m.Time.UnixMilli())
	}
	if m.Key != "" {
		b = append(b, `,"key":`...)
		b = AppendString(b, m.Key, EscapeClient)
	}
	b = append(b, `,"value":`...)
	b = AppendString(b, m.Value, EscapeClient)
	if len(m.Headers) > 0 {
		b = append(b, `,"headers":[`...)
		b = appendHeaders(b, m.Headers, EscapeClient)
		b = append(b, ']')
	}
	return append(b, '}')
}

// AppendConsumeRequest appends the ConsumeRequest {"topics":[...],
// "timeout":ms} as the client sends it: what encoding/json makes of a
// ConsumeRequest with Topics and a whole-number Timeout, without HTML
// escaping.
func AppendConsumeRequest(b []byte, topics []string, timeoutMs int64) []byte {
	b = append(b, `{"topics":[`...)
	for i, t := range topics {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, t, EscapeServer)
	}
	b = append(b, `],"timeout":`...)
	b = appendInt(b, timeoutMs)
	return append(b, '}')
}

// AppendFetchRequest appends the FetchRequest of one topic's partitions 0,
// 1, ... from offsets[p], {"topicPartitionOffsets":[{"topic":..,
// "partition":p,"offset":..},...],"timeout":ms}, as the client sends it:
// what encoding/json makes of such a FetchRequest, without HTML escaping.
func AppendFetchRequest(b []byte, topic string, offsets []int64, timeoutMs int64) []byte {
	return AppendFetchRequestFrom(b, topic, offsets, 0, timeoutMs)
}

// AppendFetchRequestFrom is AppendFetchRequest with the partitions named
// from first (modulo len(offsets)) on, wrapping around: first, first+1,
// ..., len(offsets)-1, 0, ..., first-1. A server fills a capped answer in
// the order a fetch names the partitions, so a reader that names them in
// turn from each one reads every partition with records, where one that
// always starts at 0 reads only the first ones while they hold more than
// an answer.
func AppendFetchRequestFrom(b []byte, topic string, offsets []int64, first int, timeoutMs int64) []byte {
	b = append(b, `{"topicPartitionOffsets":[`...)
	n := len(offsets)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		p := (first + i) % n
		b = AppendTopicPartitionOffset(b, topic, int32(p), offsets[p])
	}
	b = append(b, `],"timeout":`...)
	b = appendInt(b, timeoutMs)
	return append(b, '}')
}
