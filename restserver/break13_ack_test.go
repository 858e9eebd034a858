package restserver_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// An answer cut off on its way must come again even when its last record
// is the last record of the answer the client read whole before it. That
// happens after a rewind: a partition that moved to another instance and
// back (or a member dropped and rejoined) is read again from the committed
// offsets, so the next answer can hold new records of the partitions that
// stayed and end with the very record the previous answer ended with. A
// token of the last record alone then acknowledges the cut answer, and the
// new records in it are lost for this instance (and for the group once a
// later commit passes them).
//
// Each attempt varies the number of answers read before (the embedded
// broker rotates the partition it answers first), so that some attempts
// end the answer after the rewind with the acknowledged record.
func TestBreak13AckOfEarlierAnswerDoesNotAcknowledgeARewoundAnswer(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the partition a rebalance hands over and the order of an answer's partitions depend on the assignor and the fetch")
	const attempts = 6
	var opts []memory.Option
	for a := range attempts {
		opts = append(opts, memory.WithTopic(fmt.Sprintf("jobs%d", a), 2))
	}
	e := newEnv(t, envConfig{broker: opts})
	collided := 0
	for a := range attempts {
		topic := fmt.Sprintf("jobs%d", a)
		body := fmt.Sprintf(`{"topics":[%q],"timeout":1000}`, topic)
		short := fmt.Sprintf(`{"topics":[%q],"timeout":300}`, topic)
		hdr := func(ack string) []string {
			return []string{restserver.AckHeader, ack, "Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
		}
		group := "g-" + topic
		ack := restwire.AckNone
		// R's partition, and a/2 answers of one record each in it, read
		// whole.
		rp := a % 2
		for w := range a / 2 {
			e.ok("POST", "/produce", fmt.Sprintf(`[{"topic":%q,"partition":%d,"value":"warm-%d"}]`, topic, rp, w))
			got := e.consume(group, "i1", body, hdr(ack)...)
			require.Len(t, got, 1)
			ack = ackOf(got)
		}
		// A: one record in R's partition, read whole.
		e.ok("POST", "/produce", fmt.Sprintf(`[{"topic":%q,"partition":%d,"value":"R"}]`, topic, rp))
		first := e.consume(group, "i1", body, hdr(ack)...)
		require.Equal(t, []string{"R"}, values(first))
		ack = ackOf(first)
		// A second instance joins and leaves: the partition it held comes
		// back to i1 from the committed offsets (none: earliest).
		e.consume(group, "i2", `{"topics":[`+fmt.Sprintf("%q", topic)+`],"timeout":0}`, hdr(restwire.AckNone)...)
		e.ok("POST", "/delete-consumer/"+group+"/i2", "")
		// New: N in the other partition.
		e.ok("POST", "/produce", fmt.Sprintf(`[{"topic":%q,"partition":%d,"value":"N"}]`, topic, 1-rp))

		b := e.consume(group, "i1", body, hdr(ack)...)
		require.Contains(t, values(b), "N", "attempt %d", a)
		last := b[len(b)-1]
		same := last.Topic == first[0].Topic && last.Partition == first[0].Partition && last.Offset == first[0].Offset
		if same {
			collided++
		}
		// B is cut off on its way: the client never read it and still
		// acknowledges A. B must come again.
		again := e.consume(group, "i1", short, hdr(ack)...)
		assert.Contains(t, values(again), "N", "attempt %d: B %v, ending with A's last record: %v; sent again: %v",
			a, values(b), same, values(again))
	}
	t.Logf("%d of %d attempts had the answer after the rewind end with the acknowledged record", collided, attempts)
	require.Positive(t, collided, "no attempt reached the case")
}

// An answer cut off on its way, then a rebalance (a second instance joins
// and takes a partition): every record of that answer still reaches one of
// the two instances, each acknowledging only what it read whole. On the
// Kafka backend too (KAFKARPC_REST_BACKEND=kfake), where the assignment
// and the answers' shapes are the cluster's: the test asks only that
// nothing is lost.
func TestBreak13CutAnswerThenRebalanceLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("jobs", 2)}})
	const per = 3
	want := map[string]bool{}
	for p := range 2 {
		for i := range per {
			v := fmt.Sprintf("p%d-%d", p, i)
			want[v] = true
			e.ok("POST", "/produce", fmt.Sprintf(`[{"topic":"jobs","partition":%d,"value":%q}]`, p, v))
		}
	}
	hdr := func(ack string) []string {
		return []string{restserver.AckHeader, ack, "Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	}
	const body = `{"topics":["jobs"],"timeout":300}`
	seen := map[string]int{}
	acks := map[string]string{"i1": restwire.AckNone, "i2": restwire.AckNone}
	read := func(inst string, cut bool) []consumed {
		got := e.consume("g", inst, body, hdr(acks[inst])...)
		if len(got) > 0 && !cut {
			acks[inst] = ackOf(got)
			for _, m := range got {
				seen[m.Value]++
			}
		}
		return got
	}
	// i1's first answer with records is cut off.
	var first []consumed
	for deadline := time.Now().Add(30 * time.Second); len(first) == 0; {
		require.True(t, time.Now().Before(deadline), "no records for i1")
		first = read("i1", true)
	}
	// i2 joins; both read (acknowledging what they read) until every
	// record came or 30s passed.
	for deadline := time.Now().Add(30 * time.Second); len(seen) < len(want) && time.Now().Before(deadline); {
		read("i2", false)
		read("i1", false)
	}
	missing := []string{}
	for v := range want {
		if seen[v] == 0 {
			missing = append(missing, v)
		}
	}
	t.Logf("cut answer %v; delivered %v", values(first), seen)
	assert.Empty(t, missing, "records never delivered after the cut answer and the rebalance")
}

// An answer cut off on its way whose partition then moves to another
// instance, which reads, handles and commits those records, and comes
// back: the records are the group's committed past, and are not sent to
// the first instance again (the plain API, reading from the committed
// offsets, would not send them either). Sending them again ran them twice
// and, as the client commits what it handled, moved the group's committed
// offset back.
func TestBreak13CutAnswerCommittedByTheNextOwnerIsNotSentAgain(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the partitions a rebalance hands over depend on the assignor and the join timing")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("jobs", 2)}})
	hdr := func(ack string) []string {
		return []string{restserver.AckHeader, ack, "Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	}
	const body = `{"topics":["jobs"],"timeout":1000}`
	const short = `{"topics":["jobs"],"timeout":200}`
	e.ok("POST", "/produce", `[{"topic":"jobs","partition":0,"value":"a0"},{"topic":"jobs","partition":1,"value":"b0"},{"topic":"jobs","partition":1,"value":"b1"}]`)
	first := e.consume("g", "i1", body, hdr(restwire.AckNone)...) // cut off: never read
	require.ElementsMatch(t, []string{"a0", "b0", "b1"}, values(first))

	// i2 joins and takes partition 1 (the embedded broker's range
	// assignment: the second instance by name), reads it from the
	// committed offsets (none: earliest), handles and commits it, and
	// leaves: partition 1 goes back to i1.
	second := e.consume("g", "i2", body, hdr(restwire.AckNone)...)
	require.ElementsMatch(t, []string{"b0", "b1"}, values(second))
	e.ok("POST", "/commit/g/i2", `[{"topic":"jobs","partition":1,"offset":2}]`)
	e.ok("POST", "/delete-consumer/g/i2", "")

	again := e.consume("g", "i1", short, hdr(restwire.AckNone)...)
	assert.Equal(t, []string{"a0"}, values(again), "sent again: only what the group has not committed")
}

// The same partition and offset in two topics of one subscription are two
// records: acknowledging one does not acknowledge an answer with the
// other. A hostile acknowledgement (junk, 100 KiB long, several values)
// acknowledges nothing and costs nothing but the answer sent again.
func TestBreak13AckTellsTopicsApartAndShrugsOffJunk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("ta", 1), memory.WithTopic("tb", 1)}})
	hdr := func(ack string) []string {
		return []string{restserver.AckHeader, ack, "Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	}
	const body = `{"topics":["ta","tb"],"timeout":5000}`
	e.ok("POST", "/produce", `[{"topic":"ta","partition":0,"value":"a0"}]`)
	first := e.consume("g", "i", body, hdr(restwire.AckNone)...)
	require.Equal(t, []string{"a0"}, values(first))
	e.ok("POST", "/produce", `[{"topic":"tb","partition":0,"value":"b0"}]`)
	cut := e.consume("g", "i", body, hdr(ackOf(first))...)
	require.Equal(t, []string{"b0"}, values(cut))
	require.Equal(t, first[0].Offset, cut[0].Offset)

	// Never read whole: the client still acknowledges the first answer.
	assert.Equal(t, cut, e.consume("g", "i", body, hdr(ackOf(first))...), "ta's record does not acknowledge tb's")
	huge := strings.Repeat("x", 100<<10)
	assert.Equal(t, cut, e.consume("g", "i", body, hdr(huge)...))
	assert.Equal(t, cut, e.consume("g", "i", body, hdr(`junk; "q" ,=`)...))
	// Several values: the first counts.
	req, err := http.NewRequestWithContext(t.Context(), "POST", e.url+"/consume/g/i", strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	for i := 0; i+1 < len(hdr("")); i += 2 {
		req.Header.Set(hdr("")[i], hdr("")[i+1])
	}
	req.Header[restserver.AckHeader] = []string{"junk", ackOf(cut)}
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	again := decode[[]consumed](t, readAll(t, resp))
	assert.Equal(t, cut, again, "junk first: sent again")
	e.ok("POST", "/produce", `[{"topic":"ta","partition":0,"value":"a1"}]`)
	next := e.consume("g", "i", body, hdr(ackOf(cut))...)
	assert.Equal(t, []string{"a1"}, values(next), "acknowledged: what follows")
}

// readAll reads and closes resp's body, which must be a 200.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}
