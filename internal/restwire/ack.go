package restwire

import (
	"strconv"

	"github.com/kafkarpc/kafkarpc/transport"
)

// AckHeader is the consume request header with which a client says which
// consume answer it last read whole (an extension of the project's REST
// server, see restserver.AckHeader). Its value is AckNone or the AckToken of
// that answer's last record.
const AckHeader = "Kafka-Consume-Ack"

// AckNone is AckHeader's value from a client that has read no answer with
// records yet.
const AckNone = "-"

// AckToken returns the token that acknowledges a consume answer whose last
// record is m: its partition, its offset and a hash of its topic, in
// characters that are safe in a header whatever the topic's name.
func AckToken(m *transport.Message) string {
	h := uint64(fnvOffset)
	for i := 0; i < len(m.Topic); i++ { // FNV-1a
		h ^= uint64(m.Topic[i])
		h *= fnvPrime
	}
	b := make([]byte, 0, 48)
	b = strconv.AppendInt(b, int64(m.Partition), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, m.Offset, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, h, 16)
	return string(b)
}

// FNV-1a's 64-bit offset basis and prime.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)
