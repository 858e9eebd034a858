package restserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// slowLookups is a backend whose committed-offset lookups take a round
// trip, as Kafka's do (an OffsetFetch each).
type slowLookups struct {
	Backend
	rtt time.Duration
}

func (b slowLookups) Committed(ctx context.Context, group string, tp transport.TopicPartition) (int64, error) {
	t := time.NewTimer(b.rtt)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return b.Backend.Committed(ctx, group, tp)
}

// TestBreak20LagOfManyPartitionsWithinTheScrapeBound: a scrape's
// consumer lag looked up each partition of each live instance one after
// the other (a committed offset and the end offsets, Kafka round trips),
// all within a fixed 5 s. Past the partitions that fit (a few thousand at
// a millisecond a lookup; a few hundred against a remote cluster) the
// lag series were silently left out, and the more partitions the
// instances read, the larger the share missing. The lookups run several
// at once now, and what a scrape had to leave out is logged.
func TestBreak20LagOfManyPartitionsWithinTheScrapeBound(t *testing.T) {
	const parts = 64
	const rtt = 10 * time.Millisecond // 64 lookups one after the other: 640 ms
	defer func(d time.Duration) { lagTimeout = d }(lagTimeout)
	lagTimeout = 300 * time.Millisecond

	br, err := memory.New(memory.WithTopic("t", parts))
	require.NoError(t, err)
	defer br.Close()
	s, err := New(slowLookups{NewMemoryBackend(br), rtt}, WithLogger(nil))
	require.NoError(t, err)
	hs := httptest.NewServer(s)
	defer hs.Close()
	defer s.Close()

	post := func(path, body string) string {
		t.Helper()
		resp, err := http.Post(hs.URL+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b)
	}
	post("/consume/g/w", `{"topic":"t","timeout":0}`)
	var offs []string
	for p := range parts {
		offs = append(offs, fmt.Sprintf(`{"topic":"t","partition":%d,"offset":0}`, p))
	}
	post("/commit/g/w", "["+strings.Join(offs, ",")+"]")

	resp, err := http.Get(hs.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	got := strings.Count(string(b), "kafka_rest_consumer_lag{")
	require.Equal(t, parts, got, "lag series of the %d partitions the live instance reads", parts)
}
