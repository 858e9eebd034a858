package restwire

import (
	"strconv"

	"github.com/kafkarpc/kafkarpc/transport"
)

// AckHeader is the consume request header with which a client says which
// consume answer it last read whole (an extension of the project's REST
// server, see restserver.AckHeader). Its value is AckNone or the AckToken of
// that answer's records.
const AckHeader = "Kafka-Consume-Ack"

// AckNone is AckHeader's value from a client that has read no answer with
// records yet.
const AckNone = "-"

// AckToken returns the token that acknowledges a consume answer with msgs,
// as the server sent them (at least one): the last record's partition and
// offset, the number of records, and a 64-bit hash of every record's
// topic, partition and offset (FNV-1a of each topic's name, mixed word by
// word with the partitions and offsets), in characters that are safe in a
// header whatever the topics' names.
//
// Every record counts, not the last one alone: after a rewind (a partition
// handed to another member and back, a member dropped and rejoined, both
// reading again from the committed offsets) an answer can end with the
// record the answer before it ended with and still hold records the client
// never read; a token of that record would acknowledge such an answer cut
// off on its way (TestBreak13AckOfEarlierAnswerDoesNotAcknowledgeARewoundAnswer).
// Two answers with one token hold the same records, but for a hash collision.
func AckToken(msgs []transport.Message) string {
	return string(AppendAckToken(make([]byte, 0, 64), msgs))
}

// AppendAckToken appends AckToken(msgs) to b: at most 62 bytes.
func AppendAckToken(b []byte, msgs []transport.Message) []byte {
	h := uint64(fnvOffset)
	var topic string
	var th uint64
	for i := range msgs {
		m := &msgs[i]
		if i == 0 || m.Topic != topic {
			topic, th = m.Topic, fnvString(m.Topic)
		}
		h = mix(h, th)
		h = mix(h, uint64(uint32(m.Partition)))
		h = mix(h, uint64(m.Offset))
	}
	last := &msgs[len(msgs)-1]
	b = strconv.AppendInt(b, int64(last.Partition), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, last.Offset, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(len(msgs)), 10)
	b = append(b, '-')
	return strconv.AppendUint(b, h, 16)
}

// fnvString returns the FNV-1a hash of s.
func fnvString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix goes on with hash h over the word v: FNV-1a's step on a whole word,
// with the high bits folded back so that every bit of v reaches every bit
// of h over the next steps.
func mix(h, v uint64) uint64 {
	h ^= v
	h *= fnvPrime
	return h ^ h>>32
}

// FNV-1a's 64-bit offset basis and prime.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)
