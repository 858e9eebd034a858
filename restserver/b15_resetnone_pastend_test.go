package restserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestB15ResetNoneRefusesACommitPastTheEnd: a committed offset past the
// end of its partition is reset by Kafka-Auto-Offset-Reset; with none,
// Kafka has no reset (its fetch fails with OFFSET_OUT_OF_RANGE), so the
// instance must be refused as for a partition without a commit. Both
// backends reset it to the latest offset and answered 200. The refusal
// commits nothing (the group's offset stays 5) and keeps no instance; an
// offset at the end is in range.
func TestB15ResetNoneRefusesACommitPastTheEnd(t *testing.T) {
	t.Parallel()
	onBothBackends(t, func(t *testing.T, kafka bool) {
		refusesPastTheEnd(t, newEnvOn(t, kafka, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}}))
	})
}

// TestB15ResetNoneRefusesACommitPastTheEndWithoutCommittedSubscriber: the
// same on a backend that is not a restserver.CommittedSubscriber, which
// the server checks after a plain Subscribe: it looked at the committed
// offsets only and answered 200.
func TestB15ResetNoneRefusesACommitPastTheEndWithoutCommittedSubscriber(t *testing.T) {
	t.Parallel()
	refusesPastTheEnd(t, newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		wrap:   func(b restserver.Backend) restserver.Backend { return struct{ restserver.Backend }{b} },
	}))
}

func refusesPastTheEnd(t *testing.T, e *env) {
	e.ok("POST", "/produce/t", `[{"value":"r0"},{"value":"r1"}]`)
	e.commitOnly("g", "t", 5)
	require.EqualValues(t, 5, e.committed("g", "x", "t", 0))

	r := e.req("POST", "/consume/g/strict", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
	msg := requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, msg, `Kafka-Auto-Offset-Reset is none and group "g"`)
	assert.Contains(t, msg, `committed offset 5 for topic "t" partition 0 is past the partition's end (2)`)
	assert.NotContains(t, e.ok("GET", "/consumers", ""), "strict", "the refused instance is not kept")
	assert.EqualValues(t, 5, e.committed("g", "x", "t", 0), "nothing committed")

	e.commitOnly("g", "t", 2)
	e.ok("POST", "/produce/t", `{"value":"r2"}`)
	got := e.consumeAll("g", "strict", `{"topic":"t","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "none")
	assert.Equal(t, []string{"r2"}, values(got))
}

// TestB15ResetNoneUncheckedCommitIsUnavailable: on the Kafka backend, a
// strict member checks its committed offsets against the end offsets it
// lists at the join; when that listing fails, the commit cannot be
// checked, and the join is refused as unavailable (503, Retry-After), not
// taken on trust (kgo would reset an offset past the end). The retry joins.
func TestB15ResetNoneUncheckedCommitIsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, true, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.ok("POST", "/produce/t", `{"value":"r0"}`)
	e.commitOnly("g", "t", 1)

	failed := failNextListOffsets(e)
	r := e.req("POST", "/consume/g/strict", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
	require.EqualValues(t, 1, failed.Load(), "the listing failed once")
	msg := requireErrorBody(t, r, http.StatusServiceUnavailable)
	assert.Contains(t, msg, `end offset of topic "t" partition 0 could not be listed`)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.EqualValues(t, 1, e.committed("g", "x", "t", 0), "nothing committed")

	e.ok("POST", "/produce/t", `{"value":"r1"}`)
	got := e.consumeAll("g", "strict", `{"topic":"t","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "none")
	assert.Equal(t, []string{"r1"}, values(got))
}
