package upstash

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"

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
	// Decided: Produce promises offsets (transport.Transport), so an answer
	// without them is ErrOutcomeUnknown: appended, positions unknown, and
	// not to be retried.
	require.Error(t, err)
	require.True(t, errorsIsOutcomeUnknown(err), "records appended but Produce failed without ErrOutcomeUnknown: %v", err)
}

func errorsIsOutcomeUnknown(err error) bool { return errors.Is(err, transport.ErrOutcomeUnknown) }

// break3: the same acks=0 server under rpc.Call: the produce answer is
// refused as unbelievable, which rpc takes for a retryable produce error,
// so one Call appends its request again and again until its deadline (each
// copy appended, as the server's answer said), instead of once.
func TestBreak3ProduceAcksZeroRPCCallAppendsOnce(t *testing.T) {
	var produces atomic.Int64
	s := hostile(t, rpcServer(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/produce" {
			http.Error(w, `{"error":"not found","status":404}`, http.StatusNotFound)
			return
		}
		produces.Add(1)
		_, _ = io.WriteString(w, `[{"topic":"svc","partition":0,"offset":-1,"timestamp":-1}]`)
	}))
	tr := hostileTransport(t, s)
	c, err := rpc.NewClient(tr, rpc.WithReplyTopic("replies"), rpc.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, _ = c.Call(ctx, "svc", "hi")
	assert.Equal(t, int64(1), produces.Load(), "copies of one request appended")
}
