package restserver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Regression (issue 13 bug 4): with Kafka-Session-Timeout-Ms: 300 and a
// consume every 400 ms, the member's session ran out between consumes, the
// auto-commit answered nothing and the same records came back forever. The
// instance's member now heartbeats by itself, so the slow client makes
// progress.
func TestSlowAutoCommitConsumerProgresses(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "its 300 ms session needs a heartbeat every 100 ms; on a loaded machine Kafka drops the member and redelivers (Kafka's minimum session is 6 s by default)")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	hdr := []string{"Kafka-Session-Timeout-Ms", "300", "Kafka-Auto-Commit-Interval", "0", "Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce/t", `[{"value":"a"},{"value":"b"}]`)
	assert.Equal(t, []string{"a", "b"}, values(e.consume("g", "slow", `{"topic":"t","timeout":1000}`, hdr...)))
	for range 3 {
		time.Sleep(400 * time.Millisecond) // the client is busy: the scenario, not a wait for readiness
		assert.Empty(t, e.consume("g", "slow", `{"topic":"t","timeout":0}`, hdr...), "the same records came back")
	}
	assert.Equal(t, int64(2), e.committed("g", "slow", "t", 0))
}

// Regression (issue 13 bug 4): a commit by an instance whose member was
// dropped answered {"result":"Success"} and committed nothing. It is now a
// 400 that says why; the next consume rejoins and reads again.
func TestCommitAfterDropIsRefused(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "Kafka-Max-Poll-Interval-Ms is not enforced: kgo has no poll deadline, so the member is not dropped (instance expiry closes idle instances)")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	hdr := []string{"Kafka-Max-Poll-Interval-Ms", "200", "Kafka-Enable-Auto-Commit", "false", "Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce/t", `[{"value":"a"},{"value":"b"}]`)
	require.Len(t, e.consume("g", "stuck", `{"topic":"t","timeout":1000}`, hdr...), 2)
	time.Sleep(300 * time.Millisecond) // stuck longer than the max poll interval: the scenario

	for _, body := range []string{"", `{"topic":"t","partition":0,"offset":2}`} {
		r := e.req("POST", "/commit/g/stuck", body)
		msg := requireErrorBody(t, r, http.StatusBadRequest)
		assert.Contains(t, msg, "nothing committed")
		assert.Contains(t, msg, "not polling for 200ms")
	}
	assert.Equal(t, int64(-1), e.committed("g", "stuck", "t", 0))

	assert.Equal(t, []string{"a", "b"}, values(e.consume("g", "stuck", `{"topic":"t","timeout":1000}`)), "rejoined, read again")
	e.ok("POST", "/commit/g/stuck", "")
	assert.Equal(t, int64(2), e.committed("g", "stuck", "t", 0))
}

func TestMaxPollIntervalHeaderValidated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	r := e.req("POST", "/consume/g/i", `{"topic":"t","timeout":0}`, "Kafka-Max-Poll-Interval-Ms", "0")
	assert.Contains(t, requireErrorBody(t, r, http.StatusBadRequest), "Kafka-Max-Poll-Interval-Ms")
}

// Regression (issue 13 bug 3): a commit past the log end made the next
// owner wait there, so records below it were never delivered. The next
// owner now resets by its Kafka-Auto-Offset-Reset, as Kafka does.
func TestCommitPastLogEndIsReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	off := []string{"Kafka-Enable-Auto-Commit", "false", "Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce/t", `[{"value":"a"},{"value":"b"}]`)
	require.Len(t, e.consume("g", "first", `{"topic":"t","timeout":1000}`, off...), 2)
	e.ok("POST", "/commit/g/first", `{"topic":"t","partition":0,"offset":1000}`)
	e.ok("POST", "/delete-consumer/g/first", "")
	e.ok("POST", "/produce/t", `[{"value":"c"}]`)

	assert.Equal(t, []string{"a", "b", "c"}, values(e.consume("g", "next", `{"topic":"t","timeout":1000}`, off...)))
}

// Instances that come and go (a process per request, rpc's reply and reader
// groups over REST) used to leave their groups in the broker forever. A
// group whose last instance is deleted or expires, and that committed
// nothing, is gone; one with commits stays.
func TestGroupsOfDeletedInstancesAreRemoved(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "Kafka removes an empty group at offsets.retention.minutes, not when its last REST instance leaves")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	for _, g := range []string{"a", "b", "c"} {
		e.consume(g, "i", `{"topic":"t","timeout":0}`, "Kafka-Enable-Auto-Commit", "false")
		e.ok("POST", "/delete-consumer/"+g+"/i", "")
	}
	assert.Empty(t, e.broker.Groups())

	e.consume("kept", "i", `{"topic":"t","timeout":0}`)
	e.ok("POST", "/commit/kept/i", "")
	e.ok("POST", "/delete-consumer/kept/i", "")
	gs := e.broker.Groups()
	require.Len(t, gs, 1)
	assert.Equal(t, "kept", gs[0].Name)
}
