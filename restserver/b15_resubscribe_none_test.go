package restserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestB15RefusedResubscribeKeepsTheInstance: an instance with
// Kafka-Auto-Offset-Reset none that reads a committed topic, asked to read
// a set that adds a partition without a committed offset, is refused
// (400), and stays as it was: it is still listed, keeps its
// configuration (the same set is refused again: headers are read only at
// creation) and reads its topic on. So with a set whose topics have no
// committed offset at all, which the server refuses before joining, and
// with one naming a topic that does not exist (404). The refusal deleted it: a consume
// without headers then made a new instance with the default, latest, that
// accepted the set and skipped b's record for the group.
func TestB15RefusedResubscribeKeepsTheInstance(t *testing.T) {
	t.Parallel()
	onBothBackends(t, func(t *testing.T, kafka bool) {
		e := newEnvOn(t, kafka, envConfig{broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("a", 1), memory.WithTopic("b", 1)}})
		e.commitOnly("g", "a", 0)
		e.ok("POST", "/produce/a", `{"value":"a0"}`)
		got := e.consumeAll("g", "strict", `{"topic":"a","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "none")
		require.Equal(t, []string{"a0"}, values(got))
		e.ok("POST", "/produce/b", `{"value":"b0"}`)

		// A set with a partition without a committed offset (refused by
		// the join), and one without any (refused before it), each twice:
		// the second time without headers, the configuration being the
		// instance's.
		// And a set with a topic that does not exist (404).
		for _, c := range []struct {
			body, refusal string
			status        int
		}{
			{`{"topics":["a","b"],"timeout":0}`, `no committed offset for topic "b" partition 0`, http.StatusBadRequest},
			{`{"topic":"b","timeout":0}`, `no committed offset for topics ["b"]`, http.StatusBadRequest},
			{`{"topics":["a","nope"],"timeout":0}`, `nope`, http.StatusNotFound},
		} {
			for _, hdr := range [][]string{{"Kafka-Auto-Offset-Reset", "none"}, nil} {
				r := e.req("POST", "/consume/g/strict", c.body, hdr...)
				msg := requireErrorBody(t, r, c.status)
				assert.Contains(t, msg, c.refusal)
				assert.Contains(t, e.ok("GET", "/consumers", ""), `"strict"`, "the refused re-subscribe keeps the instance")
			}
		}
		assert.EqualValues(t, -1, e.committed("g", "x", "b", 0), "nothing committed for b")

		// It reads a on, from where it was.
		e.ok("POST", "/produce/a", `{"value":"a1"}`)
		got = e.consumeAll("g", "strict", `{"topic":"a","timeout":1000}`, 1)
		assert.Equal(t, []string{"a1"}, values(got))
	})
}
