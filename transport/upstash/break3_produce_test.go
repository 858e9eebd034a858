package upstash

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// break3: a REST server in front of a Kafka producer configured with
// acks=0 answers every produce with offset -1 (Kafka's
// RecordMetadata.UNKNOWN_OFFSET: the record was sent, its offset is not
// known; the timestamp is -1 likewise). checkAnswer takes any negative
// offset as "not believable" and fails the Produce, although the records
// were appended; the error does not even wrap transport.ErrOutcomeUnknown,
// so a caller that retries on an ordinary error duplicates them.
func TestBreak3ProduceAcksZeroUnknownOffset(t *testing.T) {
	s := hostile(t, answers(map[string]string{"/produce": `[{"topic":"t","partition":2,"offset":-1,"timestamp":-1},{"topic":"t","partition":2,"offset":-1,"timestamp":-1}]`}))
	tr := hostileTransport(t, s)
	msgs := []transport.Message{{Topic: "t", Value: []byte("a")}, {Topic: "t", Value: []byte("b")}}
	_, err := tr.Produce(t.Context(), msgs...)
	if err != nil && !errorsIsOutcomeUnknown(err) {
		t.Errorf("records appended but Produce failed without ErrOutcomeUnknown: %v", err)
	}
	require.NoError(t, err, "an acks=0 answer: appended, offsets unknown")
}

func errorsIsOutcomeUnknown(err error) bool { return errors.Is(err, transport.ErrOutcomeUnknown) }
