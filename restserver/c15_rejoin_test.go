package restserver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestC15RefusedResubscribeRejoinsAsARebalance: an instance with
// Kafka-Auto-Offset-Reset none and no auto-commit reads a (committed) and
// c, whose partition a rebalance handed over to it without a committed
// offset (it starts there as Kafka does, at the group's start). Its
// re-subscribe to a set naming a missing topic is refused (404), and the
// instance must go on reading a and c (doc.go: it rejoins "as after a
// rebalance"). The rejoin was strict, as a new instance's first join: c
// has no committed offset, so the rejoin was refused too and the instance
// deleted, while the answer named only the missing topic (and the next
// consume without headers made a new instance with the defaults).
//
// Embedded broker only: the Kafka backend commits the start of a partition
// handed over without a committed offset, so its strict rejoin finds one.
func TestC15RefusedResubscribeRejoinsAsARebalance(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, false, envConfig{broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("a", 1), memory.WithTopic("c", 1)}})
	e.commitOnly("g", "a", 0)
	noAuto := []string{"Kafka-Enable-Auto-Commit", "false"}
	e.consume("g", "a-x", `{"topic":"c","timeout":0}`, noAuto...)
	strict := append([]string{"Kafka-Auto-Offset-Reset", "none"}, noAuto...)
	// s's first assignment is a's partition only: c's stays with a-x.
	e.consume("g", "s", `{"topics":["a","c"],"timeout":0}`, strict...)
	e.ok("POST", "/delete-consumer/g/a-x", "") // c goes to s, uncommitted
	e.ok("POST", "/produce/c", `{"value":"c0"}`)
	got := e.consumeAll("g", "s", `{"topics":["a","c"],"timeout":1000}`, 1)
	require.Equal(t, []string{"c0"}, values(got))

	r := e.req("POST", "/consume/g/s", `{"topics":["a","c","nope"],"timeout":0}`)
	assert.Contains(t, requireErrorBody(t, r, http.StatusNotFound), "nope")
	assert.Contains(t, e.ok("GET", "/consumers", ""), `"s"`, "the refused re-subscribe keeps the instance")

	// It reads on (c0 again at most: nothing was committed for c).
	e.ok("POST", "/produce/c", `{"value":"c1"}`)
	e.ok("POST", "/produce/a", `{"value":"a0"}`)
	var vals []string
	require.Eventually(t, func() bool {
		vals = append(vals, values(e.consume("g", "s", `{"topics":["a","c"],"timeout":200}`))...)
		return containsAll(vals, "c1", "a0")
	}, 5*time.Second, time.Millisecond)
	assert.Subset(t, []string{"c0", "c1", "a0"}, vals)
	assert.Contains(t, e.ok("GET", "/consumers", ""), `"s"`)
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}
