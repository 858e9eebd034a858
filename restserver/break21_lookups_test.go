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

// skewedTrips is a backend whose offset lookups of lower partitions take
// longer: run several at once (lookupEach), they end in the reverse of the
// order a request names them.
type skewedTrips struct {
	restserver.Backend
	step time.Duration
	n    int32
}

func (b skewedTrips) Offsets(ctx context.Context, tp transport.TopicPartition) (int64, int64, error) {
	t := time.NewTimer(time.Duration(b.n-tp.Partition%b.n) * b.step)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	return b.Backend.Offsets(ctx, tp)
}

// TestBreak21OffsetsLookedUpTogetherAnswerInRequestOrder: /offsets looks
// its partitions up several at once on a broker that answers over the
// network (c0d84cf); the answer still lists them as the request names
// them, duplicates included, each with its own offset, and an unknown
// partition among them fails the request as it does alone.
func TestBreak21OffsetsLookedUpTogetherAnswerInRequestOrder(t *testing.T) {
	t.Parallel()
	const parts = 12
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", parts)},
		wrap:   func(b restserver.Backend) restserver.Backend { return skewedTrips{b, 3 * time.Millisecond, parts} },
	})
	for p := range parts {
		for range p {
			e.ok("POST", "/produce/t", fmt.Sprintf(`[{"partition":%d,"value":"v"}]`, p))
		}
	}
	// Named in a shuffled order, with duplicates.
	order := []int32{5, 0, 11, 5, 3, 7, 1, 11, 2, 9, 4, 0, 10, 6, 8}
	var list []string
	for _, p := range order {
		list = append(list, fmt.Sprintf(`{"topic":"t","partition":%d}`, p))
	}
	got := decode[[]tpo](t, e.ok("POST", "/offsets/latest", "["+strings.Join(list, ",")+"]"))
	require.Len(t, got, len(order))
	for i, p := range order {
		require.Equal(t, tpo{Topic: "t", Partition: p, Offset: int64(p)}, got[i], "answer %d", i)
	}

	// An unknown partition among them: the status it gets alone.
	alone := e.req("POST", "/offsets/latest", `[{"topic":"t","partition":99}]`)
	require.NotEqual(t, http.StatusOK, alone.status)
	mixed := e.req("POST", "/offsets/latest", "["+strings.Join(append(list[:6:6], `{"topic":"t","partition":99}`), ",")+"]")
	require.Equal(t, alone.status, mixed.status, "alone: %s; among others: %s", alone.body, mixed.body)
	t.Logf("alone: %d %s; among others: %d %s", alone.status, alone.body, mixed.status, mixed.body)
}
