package restserver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestC15ResetNoneRefusesACommitBeforeTheStart: a committed offset below
// the partition's earliest retained offset (retention deleted the records
// from it on) is out of range as one past the end is: Kafka with
// auto.offset.reset=none fails the fetch (OFFSET_OUT_OF_RANGE), so that
// the loss is seen. Kafka-Auto-Offset-Reset none must refuse it (400)
// rather than read on from the earliest retained record (embedded broker)
// or jump to the end (Kafka backend: kgo resets it by the member's start).
func TestC15ResetNoneRefusesACommitBeforeTheStart(t *testing.T) {
	t.Parallel()
	onBothBackends(t, func(t *testing.T, kafka bool) {
		refusesBeforeTheStart(t, newEnvOn(t, kafka, envConfig{broker: []memory.Option{memory.WithTopic("t", 1), memory.WithRetention(2, 0)}}), kafka)
	})
}

// TestC15ResetNoneRefusesACommitBeforeTheStartWithoutCommittedSubscriber:
// the same on a backend the server checks after a plain Subscribe.
func TestC15ResetNoneRefusesACommitBeforeTheStartWithoutCommittedSubscriber(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1), memory.WithRetention(2, 0)},
		wrap:   func(b restserver.Backend) restserver.Backend { return struct{ restserver.Backend }{b} },
	})
	refusesBeforeTheStart(t, e, e.kafka != nil)
}

func refusesBeforeTheStart(t *testing.T, e *env, kafka bool) {
	e.ok("POST", "/produce/t", `[{"value":"r0"},{"value":"r1"},{"value":"r2"},{"value":"r3"}]`)
	e.commitOnly("g", "t", 1)
	if kafka {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.kafka.Kfake.ListenAddrs()...))
		require.NoError(t, err)
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var o kadm.Offsets
		o.AddOffset("t", 0, 2, -1)
		res, err := kadm.NewClient(cl).DeleteRecords(ctx, o)
		require.NoError(t, err)
		require.NoError(t, res.Error())
	}
	r := e.req("POST", "/consume/g/strict", `{"topic":"t","timeout":300}`, "Kafka-Auto-Offset-Reset", "none")
	msg := requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, msg, `committed offset 1 for topic "t" partition 0`)
	assert.Contains(t, msg, `is before the partition's earliest retained offset (2)`)
	assert.EqualValues(t, 1, e.committed("g", "x", "t", 0), "nothing committed")

	// Within the range, it reads from the committed offset.
	e.commitOnly("g", "t", 2)
	got := e.consumeAll("g", "strict", `{"topic":"t","timeout":1000}`, 2, "Kafka-Auto-Offset-Reset", "none")
	assert.Equal(t, []string{"r2", "r3"}, values(got))
}
