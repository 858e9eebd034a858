package restserver_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestBreak4FetchPartitionCapAsDocumented: the package doc's Limits table
// says one /fetch may name 1000 partitions by default (→ 400), but
// DefaultFetchMaxPartitions is 10,000: an operator relying on the
// documented bound gets ten times the fetch work per request.
func TestBreak4FetchPartitionCapAsDocumented(t *testing.T) {
	e := newEnv(t, envConfig{})
	var b strings.Builder
	b.WriteString(`{"timeout":0,"topicPartitionOffsets":[`)
	for p := range 1001 {
		if p > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"topic":"t%d","partition":0,"offset":0}`, p)
	}
	b.WriteString("]}")
	msg := requireErrorBody(t, e.req("POST", "/fetch", b.String()), http.StatusBadRequest)
	assert.Contains(t, msg, "the fetch partition limit", "1001 partitions should pass the documented default of 1000")
}
