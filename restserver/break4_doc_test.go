package restserver_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/restserver"
)

// TestBreak4FetchPartitionCapAsDocumented: the package doc's Limits table
// says one /fetch may name 1000 partitions by default (→ 400), but
// DefaultFetchMaxPartitions is 10,000: an operator relying on the
// documented bound gets ten times the fetch work per request.
func TestBreak4FetchPartitionCapAsDocumented(t *testing.T) {
	e := newEnv(t, envConfig{})
	var b strings.Builder
	b.WriteString(`{"timeout":0,"topicPartitionOffsets":[`)
	for p := range restserver.DefaultFetchMaxPartitions + 1 {
		if p > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"topic":"t%d","partition":0,"offset":0}`, p)
	}
	b.WriteString("]}")
	msg := requireErrorBody(t, e.req("POST", "/fetch", b.String()), http.StatusBadRequest)
	assert.Contains(t, msg, "the fetch partition limit", "one partition over the documented default (restserver.DefaultFetchMaxPartitions, 10000 in the doc's table) is refused")
}

// The table in the package doc gives the default itself.
func TestDocTableGivesFetchPartitionCap(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	assert.NoError(t, err)
	assert.Contains(t, string(src), fmt.Sprintf("WithFetchMaxPartitions      %d ", restserver.DefaultFetchMaxPartitions))
}
