package restserver_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// newEnvOn is newEnv on the backend named, whatever KAFKARPC_REST_BACKEND
// says: the embedded broker, or the Kafka backend on kfake.
func newEnvOn(t testing.TB, kafka bool, c envConfig) *env {
	t.Helper()
	opts := append([]restserver.Option{restserver.WithCredentials(testUser, testPass)}, c.server...)
	rc := resttest.Config{Broker: c.broker, Server: opts}
	var kc *kafkatest.Cluster
	if kafka {
		rc.NewBackend = func(tb testing.TB) restserver.Backend {
			kc = kafkaBackendFor(tb, c.broker)
			return kc.Backend
		}
	}
	s := resttest.Start(t, rc)
	e := &env{t: t, broker: s.Broker, kafka: kc, srv: s.REST, url: s.URL, client: s.HTTP.Client()}
	if kc != nil {
		e.backend = kc.Backend
	} else {
		e.backend = restserver.NewMemoryBackend(s.Broker)
	}
	return e
}

// onBothBackends runs fn as subtests on the embedded broker and on the
// Kafka backend (kfake).
func onBothBackends(t *testing.T, fn func(t *testing.T, kafka bool)) {
	for _, b := range []struct {
		name  string
		kafka bool
	}{{"memory", false}, {"kfake", true}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.kafka)
		})
	}
}

// commitOnly makes group commit offset at of topic partition 0 and
// nothing else, through an instance reading topic with earliest (whose
// starts the Kafka backend does not commit) and without auto-commit, then
// deleted.
func (e *env) commitOnly(group, topic string, at int64) {
	e.t.Helper()
	e.consume(group, "setter", `{"topic":"`+topic+`","timeout":0}`,
		"Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false")
	e.ok("POST", "/commit/"+group+"/setter", `{"topic":"`+topic+`","partition":0,"offset":`+strconv.FormatInt(at, 10)+`}`)
	e.ok("POST", "/delete-consumer/"+group+"/setter", "")
}

// TestResetNoneRefusesAPartitionWithoutCommit: doc.go promises that
// Kafka-Auto-Offset-Reset "none" answers 400 when the group has no
// committed offset for a partition the new instance starts with. On the
// Kafka backend only a group without any committed offset was refused: a
// group that had committed partition 0 of a topic but not partition 1
// got 200, and partition 1 started at its latest offset, committed there
// by the join (Subscribe commits the latest starts of uncommitted
// partitions), so the record before it was skipped for the group for
// good. Both backends now refuse it, with nothing committed for the
// partition, and an instance with earliest then reads that record.
func TestResetNoneRefusesAPartitionWithoutCommit(t *testing.T) {
	t.Parallel()
	onBothBackends(t, func(t *testing.T, kafka bool) {
		e := newEnvOn(t, kafka, envConfig{broker: []memory.Option{memory.WithTopic("t", 2), memory.WithTopic("a", 1), memory.WithTopic("b", 1)}})

		t.Run("one partition of a topic committed, the other not", func(t *testing.T) {
			e.commitOnly("g", "t", 0)
			e.ok("POST", "/produce/t", `[{"partition":0,"value":"p0"},{"partition":1,"value":"p1"}]`)

			r := e.req("POST", "/consume/g/strict", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
			msg := requireErrorBody(t, r, http.StatusBadRequest)
			assert.Contains(t, msg, `no committed offset for topic "t" partition 1`)
			assert.NotContains(t, e.ok("GET", "/consumers", ""), "strict", "the refused instance is not kept")
			assert.EqualValues(t, -1, e.committed("g", "x", "t", 1), "nothing committed for partition 1")
			assert.EqualValues(t, 0, e.committed("g", "x", "t", 0))

			// Nothing was skipped: earliest reads partition 1 from its start,
			// partition 0 from its committed offset.
			got := e.consumeAll("g", "reader", `{"topic":"t","timeout":1000}`, 2, "Kafka-Auto-Offset-Reset", "earliest")
			assert.ElementsMatch(t, []string{"p0", "p1"}, values(got))
		})

		t.Run("one topic committed, the other not", func(t *testing.T) {
			e.commitOnly("h", "a", 0)
			e.ok("POST", "/produce/b", `{"value":"b0"}`)

			r := e.req("POST", "/consume/h/strict", `{"topics":["a","b"],"timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
			msg := requireErrorBody(t, r, http.StatusBadRequest)
			assert.Contains(t, msg, `no committed offset for topic "b" partition 0`)
			assert.EqualValues(t, -1, e.committed("h", "x", "b", 0), "nothing committed for b")

			// The refused join fixed no start for b: earliest reads b0.
			got := e.consumeAll("h", "reader", `{"topics":["a","b"],"timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "earliest")
			assert.Equal(t, []string{"b0"}, values(got))
		})

		t.Run("every partition committed", func(t *testing.T) {
			e.commitOnly("k", "a", 0)
			e.ok("POST", "/produce/a", `{"value":"a1"}`)
			got := e.consumeAll("k", "strict", `{"topic":"a","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "none")
			require.Equal(t, []string{"a1"}, values(got))
		})
	})
}
