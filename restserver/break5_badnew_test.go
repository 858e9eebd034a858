package restserver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BUG (fixed): a consume with a new incarnation token replaced the live
// instance BEFORE its own configuration headers were checked. A new
// incarnation whose request is refused (400: a malformed
// Kafka-Session-Timeout-Ms, say, from a misconfigured new release in a
// rolling deploy) had already closed the running incarnation's instance
// and fenced it: the healthy old process stops (ErrFenced), the new one
// can never consume, and the service has no member at all. A request that
// is refused must change nothing.
func TestBreak5RefusedNewIncarnationDoesNotFenceTheLiveOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.ok("POST", "/produce/t", `[{"value":"a"}]`)
	require.Equal(t, []string{"a"}, values(e.consume("g", "w", `{"topic":"t","timeout":1000}`, inc("one")...)))

	for _, bad := range [][]string{
		{"Kafka-Session-Timeout-Ms", "soon"},
		{"Kafka-Auto-Offset-Reset", "sideways"},
		{"Kafka-Enable-Auto-Commit", "maybe"},
	} {
		hdr := append([]string{restserver.IncarnationHeader, "two"}, bad...)
		requireErrorBody(t, e.req("POST", "/consume/g/w", `{"topic":"t","timeout":0}`, hdr...), http.StatusBadRequest)
	}

	// The running incarnation is untouched: not fenced, same position (a
	// replaced instance would deliver "a" again from the committed offset).
	e.ok("POST", "/produce/t", `[{"value":"b"}]`)
	start := time.Now()
	r := e.req("POST", "/consume/g/w", `{"topic":"t","timeout":2000}`, inc("one")...)
	require.Equal(t, http.StatusOK, r.status, "the live incarnation was fenced by a refused request: %s", r.body)
	assert.Equal(t, []string{"b"}, values(decode[[]consumed](t, r.body)))
	assert.Less(t, time.Since(start), 1500*time.Millisecond)
	// And a correct request with "two" still takes over.
	got := e.consume("g", "w", `{"topic":"t","timeout":2000}`, inc("two")...)
	assert.Equal(t, []string{"a", "b"}, values(got))
}
