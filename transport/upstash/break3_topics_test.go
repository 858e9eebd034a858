package upstash

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// break3: Tail reads the whole GET /topics answer with a 4 MiB cap
// (maxTopicsBytes, "some 100,000 topics" at ~40-byte names). Kafka allows
// topic names of up to 249 bytes; a legitimate cluster of 20,000 topics
// with ~200-byte names (4.2 MB of listing) makes every Tail fail, even of a
// topic with a short name, though nothing in the answer is hostile.
func TestBreak3TailOnClusterWithLargeTopicListing(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"orders":1`)
	for i := range 20_000 {
		fmt.Fprintf(&b, `,"%s.%05d":1`, strings.Repeat("team.service.entity.", 10), i)
	}
	b.WriteString("}")
	s := hostile(t, answers(map[string]string{
		"/topics":         b.String(),
		"/offsets/latest": `[{"topic":"orders","partition":0,"offset":3}]`,
		"/fetch":          `[]`,
	}))
	tr := hostileTransport(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	tl, err := tr.Tail(ctx, "orders")
	require.NoError(t, err, "GET /topics answer of %d bytes", b.Len())
	_ = tl.Close()
}
