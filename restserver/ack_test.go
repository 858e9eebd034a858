package restserver_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// ackOf is the Kafka-Consume-Ack value that acknowledges the answer ms.
func ackOf(ms []consumed) string {
	msgs := make([]transport.Message, len(ms))
	for i, m := range ms {
		msgs[i] = transport.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	return restwire.AckToken(msgs)
}

// A consume with Kafka-Consume-Ack that does not acknowledge the
// instance's last answer gets that answer again, before anything new; one
// that acknowledges it goes on after it. A consume without the header is
// served as the plain API says: an answer is never sent twice.
func TestConsumeAckSendsAnUnreadAnswerAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("jobs", 1)}})
	earliest := []string{"Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce", `[{"topic":"jobs","value":"a"},{"topic":"jobs","value":"b"},{"topic":"jobs","value":"c"}]`)
	const body = `{"topics":["jobs"],"timeout":1000}`
	acked := func(v string) []string { return append([]string{restserver.AckHeader, v}, earliest...) }

	first := e.consume("g", "i", body, acked(restwire.AckNone)...)
	require.Equal(t, []string{"a", "b", "c"}, values(first))
	// The client never read that answer: it acknowledges nothing yet.
	again := e.consume("g", "i", body, acked(restwire.AckNone)...)
	assert.Equal(t, first, again, "the unacknowledged answer, again")

	e.ok("POST", "/produce", `[{"topic":"jobs","value":"d"}]`)
	next := e.consume("g", "i", body, acked(ackOf(first))...)
	require.Equal(t, []string{"d"}, values(next), "acknowledged: what follows it")
	// A junk or stale acknowledgement is no acknowledgement.
	assert.Equal(t, next, e.consume("g", "i", body, acked(ackOf(first))...))
	assert.Equal(t, next, e.consume("g", "i", body, acked("junk")...))
	assert.Empty(t, e.consume("g", "i", `{"topics":["jobs"],"timeout":50}`, acked(ackOf(next))...))

	// The plain API: the same cut-off client would have lost a, b and c.
	require.Equal(t, []string{"a", "b", "c", "d"}, values(e.consume("plain", "i", body, earliest...)))
	assert.Empty(t, e.consume("plain", "i", `{"topics":["jobs"],"timeout":50}`, earliest...))
}

// An unacknowledged answer is sent again only in the partitions the
// instance still owns: those that moved to another instance meanwhile are
// that instance's to read, from the committed offsets.
func TestConsumeAckResendsOnlyOwnedPartitions(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the partitions a rebalance hands over depend on the assignor and the join timing")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("jobs", 2)}})
	earliest := []string{"Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce", `[{"topic":"jobs","partition":0,"value":"p0"},{"topic":"jobs","partition":1,"value":"p1"}]`)
	const body = `{"topics":["jobs"],"timeout":1000}`
	acked := append([]string{restserver.AckHeader, restwire.AckNone}, earliest...)
	first := e.consume("g", "i1", body, acked...)
	require.ElementsMatch(t, []string{"p0", "p1"}, values(first))

	// A second instance joins and takes one partition; it reads it from
	// the group's committed offsets (none: earliest).
	second := e.consume("g", "i2", body, acked...)
	require.Len(t, second, 1, "the partition the second instance owns")
	again := e.consume("g", "i1", body, acked...)
	require.Len(t, again, 1, "sent again: only the partition i1 kept")
	assert.NotEqual(t, second[0].Partition, again[0].Partition)
	assert.Contains(t, first, again[0])
}
