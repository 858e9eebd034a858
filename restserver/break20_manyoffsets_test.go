package restserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// roundTrips is a backend whose offset lookups each take a round trip to
// the broker, as Kafka's do (a ListOffsets, an OffsetFetch).
type roundTrips struct {
	restserver.Backend
	rtt time.Duration
}

func (b roundTrips) wait(ctx context.Context) error {
	t := time.NewTimer(b.rtt)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b roundTrips) Offsets(ctx context.Context, tp transport.TopicPartition) (int64, int64, error) {
	if err := b.wait(ctx); err != nil {
		return 0, 0, err
	}
	return b.Backend.Offsets(ctx, tp)
}

func (b roundTrips) Committed(ctx context.Context, group string, tp transport.TopicPartition) (int64, error) {
	if err := b.wait(ctx); err != nil {
		return 0, err
	}
	return b.Backend.Committed(ctx, group, tp)
}

// TestBreak20OffsetsOfManyPartitionsWithinTheTimeout: /offsets and
// /committed looked their partitions up one after the other, all within
// the request's timeout (10 s by default). A Tail of a topic with many
// partitions starts with POST /offsets/latest of every one: past about
// 10 s of round trips (10,000 partitions at 1 ms, which the server's and
// the client's caps accept; 2,000 against a cluster 5 ms away) every
// attempt ended in 504, retried until the client's setup timeout, and the
// Tail could never start. The lookups run several at once now.
func TestBreak20OffsetsOfManyPartitionsWithinTheTimeout(t *testing.T) {
	t.Parallel()
	const parts = 64
	// One after the other: 2.56 s, past the 1.5 s timeout below; 8 at a
	// time, 8 round trips, with room for the Kafka backend's own (a
	// 10 ms round trip and a 400 ms timeout left too little of it: 2 runs
	// in 10 failed with 504 over kfake under -race).
	const rtt = 40 * time.Millisecond
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", parts)},
		wrap:   func(b restserver.Backend) restserver.Backend { return roundTrips{b, rtt} },
	})
	var list []string
	for p := range parts {
		list = append(list, fmt.Sprintf(`{"topic":"t","partition":%d}`, p))
	}
	body := "[" + strings.Join(list, ",") + "]"
	for _, path := range []string{"/offsets/latest?timeout=1500", "/committed/g/w?timeout=1500"} {
		r := e.req("POST", path, body)
		require.Equal(t, http.StatusOK, r.status, "%s of %d partitions: %s", path, parts, r.body)
		require.Equal(t, parts, strings.Count(r.body, `"partition"`), path)
	}
}

// TestBreak20FetchOfManyPartitionsWithinTheMaxTimeout: a /fetch looked up
// each named partition's offsets one after the other before reading, so
// every fetch of P partitions (a Tail's poll names all of its topic's)
// took P round trips to Kafka, records or not: a reply read by a Tail of a
// 64-partition topic waited 64 round trips, and a fetch of a few thousand
// partitions outlasted the max timeout (30 s) and failed, every time. The
// lookups run several at once now.
func TestBreak20FetchOfManyPartitionsWithinTheMaxTimeout(t *testing.T) {
	t.Parallel()
	const parts = 64
	const rtt = 10 * time.Millisecond // one after the other: 640 ms, past the 400 ms max timeout below
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", parts)},
		server: []restserver.Option{restserver.WithMaxTimeout(400 * time.Millisecond)},
		wrap:   func(b restserver.Backend) restserver.Backend { return roundTrips{b, rtt} },
	})
	e.ok("POST", "/produce/t", fmt.Sprintf(`[{"partition":%d,"value":"last"}]`, parts-1))
	var list []string
	for p := range parts {
		list = append(list, fmt.Sprintf(`{"topic":"t","partition":%d,"offset":0}`, p))
	}
	r := e.req("POST", "/fetch", `{"topicPartitionOffsets":[`+strings.Join(list, ",")+`],"timeout":0}`)
	require.Equal(t, http.StatusOK, r.status, "a fetch of %d partitions: %s", parts, r.body)
	require.Contains(t, r.body, `"partition":63`)
}
