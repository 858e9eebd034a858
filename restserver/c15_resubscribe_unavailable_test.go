package restserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestC15UnavailableResubscribeKeepsTheInstance: a re-subscribe whose join
// fails with 503 (Kafka-Auto-Offset-Reset none, and the end offsets its
// commits are checked against could not be listed: 7ee35a5) leaves the
// instance as a refused one does (be0cb4e): reading its old topics with
// its configuration, so that the retry the 503 asks for re-subscribes the
// same instance. Only a 4xx rejoined: the instance was deleted, and the
// retry without headers made a new one with the defaults.
func TestC15UnavailableResubscribeKeepsTheInstance(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, true, envConfig{broker: []memory.Option{memory.WithTopic("a", 1), memory.WithTopic("b", 1)}})
	e.commitOnly("g", "a", 0)
	e.commitOnly("g", "b", 0)
	e.ok("POST", "/produce/a", `{"value":"a0"}`)
	got := e.consumeAll("g", "strict", `{"topic":"a","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "none", "Kafka-Enable-Auto-Commit", "false")
	require.Equal(t, []string{"a0"}, values(got))

	failed := failNextListOffsets(e)
	r := e.req("POST", "/consume/g/strict", `{"topics":["a","b"],"timeout":0}`)
	require.EqualValues(t, 1, failed.Load(), "the listing failed once")
	requireErrorBody(t, r, http.StatusServiceUnavailable)
	assert.Contains(t, e.ok("GET", "/consumers", ""), `"strict"`, "the failed re-subscribe keeps the instance")

	// The retry, without headers, re-subscribes the instance: none and no
	// auto-commit still (b from its committed offset, 0).
	e.ok("POST", "/produce/b", `{"value":"b0"}`)
	got = e.consumeAll("g", "strict", `{"topics":["a","b"],"timeout":1000}`, 2)
	assert.ElementsMatch(t, []string{"a0", "b0"}, values(got), "a from its committed offset 0 (no auto-commit), b from 0")
	e.ok("POST", "/delete-consumer/g/strict", "")
	assert.EqualValues(t, 0, e.committed("g", "x", "a", 0), "no auto-commit, not even on delete")
}
