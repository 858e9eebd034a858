package restserver_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// inc is the incarnation header pair for e.consume and friends.
func inc(token string) []string {
	return []string{restserver.IncarnationHeader, token, "Kafka-Enable-Auto-Commit", "false", "Kafka-Auto-Offset-Reset", "earliest"}
}

// A process that comes back with the same instance name and a new
// incarnation gets the records its dead predecessor was given but did not
// commit, at once, from the committed offset, not from the dead process's
// position in the server.
func TestNewIncarnationResumesFromCommitted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.ok("POST", "/produce/t", `[{"value":"a"},{"value":"b"},{"value":"c"},{"value":"d"}]`)

	got := e.consume("g", "w1", `{"topic":"t","timeout":1000}`, inc("one")...)
	require.Equal(t, []string{"a", "b", "c", "d"}, values(got))
	// The first process commits a and b, then dies with c and d handled
	// (delivered) but not committed.
	e.ok("POST", "/commit/g/w1", `{"topic":"t","partition":0,"offset":2}`, inc("one")...)

	// Without the header, a client naming the instance goes on from the
	// instance's position: the plain API is unchanged.
	assert.Empty(t, e.consume("g", "w1", `{"topic":"t","timeout":0}`))

	// The restarted process, with a new incarnation: c and d again.
	start := time.Now()
	got = e.consume("g", "w1", `{"topic":"t","timeout":5000}`, inc("two")...)
	assert.Equal(t, []string{"c", "d"}, values(got))
	assert.Less(t, time.Since(start), 2*time.Second, "the new incarnation waited for its partitions")

	// Its requests keep the instance; the old token is fenced everywhere.
	e.ok("POST", "/commit/g/w1", `{"topic":"t","partition":0,"offset":4}`, inc("two")...)
	assert.Equal(t, int64(4), e.committed("g", "w1", "t", 0))
	for _, r := range []reply{
		e.req("POST", "/consume/g/w1", `{"topic":"t","timeout":0}`, inc("one")...),
		e.req("POST", "/commit/g/w1", `{"topic":"t","partition":0,"offset":1}`, inc("one")...),
		e.req("POST", "/delete-consumer/g/w1", "", inc("one")...),
	} {
		msg := requireErrorBody(t, r, http.StatusNotFound)
		assert.Contains(t, msg, "replaced by a newer incarnation")
	}
	// The fenced commit changed nothing.
	assert.Equal(t, int64(4), e.committed("g", "w1", "t", 0))
	assert.Equal(t, 1, e.srv.Stats().Instances)
}

// The replaced instance's consume in flight ends at once with the fenced
// answer, and the replacement does not commit the dead instance's
// positions, even with auto-commit on.
func TestNewIncarnationEndsOldLongPollWithoutCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.ok("POST", "/produce/t", `[{"value":"a"}]`)
	auto := []string{restserver.IncarnationHeader, "one", "Kafka-Auto-Offset-Reset", "earliest"} // auto-commit on
	require.Equal(t, []string{"a"}, values(e.consume("g", "i", `{"topic":"t","timeout":1000}`, auto...)))

	n := e.srv.Stats().Requests
	done := make(chan reply, 1)
	go func() { done <- e.req("POST", "/consume/g/i", `{"topic":"t","timeout":30000}`, auto...) }()
	require.Eventually(t, func() bool { return e.srv.Stats().Requests > n }, 5*time.Second, time.Millisecond)
	// Whether the long poll is waiting or still on its way, the old token
	// is answered the same.

	got := e.consume("g", "i", `{"topic":"t","timeout":5000}`, restserver.IncarnationHeader, "two", "Kafka-Auto-Offset-Reset", "earliest")
	assert.Equal(t, []string{"a"}, values(got), "the new incarnation reads from the committed offset")
	assert.Equal(t, int64(-1), e.committed("g", "i", "t", 0), "the replaced instance committed its position")
	select {
	case r := <-done:
		msg := requireErrorBody(t, r, http.StatusNotFound)
		assert.Contains(t, msg, "replaced by a newer incarnation")
	case <-time.After(20 * time.Second):
		t.Fatal("the replaced instance's long poll did not end")
	}
}

// A delete naming a new incarnation (what kafkarpc's REST transport sends
// when it starts) fences the old one, whatever the order of what follows.
func TestDeleteWithNewIncarnationFencesOld(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.consume("g", "i", `{"topic":"t","timeout":0}`, inc("old")...)
	// The instance is replaced (and so gone): the delete itself finds
	// nothing left to delete.
	requireErrorBody(t, e.req("POST", "/delete-consumer/g/i", "", inc("new")...), http.StatusNotFound)
	assert.Equal(t, 0, e.srv.Stats().Instances)
	msg := requireErrorBody(t, e.req("POST", "/consume/g/i", `{"topic":"t","timeout":0}`, inc("old")...), http.StatusNotFound)
	assert.Contains(t, msg, "replaced by a newer incarnation")
	e.consume("g", "i", `{"topic":"t","timeout":0}`, inc("new")...)

	// A delete or commit with a token for a name the server knows nothing
	// of creates nothing.
	requireErrorBody(t, e.req("POST", "/delete-consumer/g/other", "", inc("x")...), http.StatusNotFound)
	e.consume("g", "other", `{"topic":"t","timeout":0}`, inc("y")...)
}

func TestIncarnationHeaderValidated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	for _, bad := range []string{strings.Repeat("x", 129), "two words", "tab\there"} {
		msg := requireErrorBody(t, e.req("POST", "/consume/g/i", `{"topic":"t","timeout":0}`, restserver.IncarnationHeader, bad), http.StatusBadRequest)
		assert.Contains(t, msg, restserver.IncarnationHeader)
	}
	assert.Equal(t, 0, e.srv.Stats().Instances, "a refused consume made an instance")
}
