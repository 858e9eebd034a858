package restserver_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// consume POSTs a consume request and returns the records.
func (e *env) consume(group, inst, body string, hdr ...string) []consumed {
	e.t.Helper()
	return decode[[]consumed](e.t, e.ok("POST", "/consume/"+group+"/"+inst, body, hdr...))
}

// committed returns the group's committed offset of one partition.
func (e *env) committed(group, inst, topic string, p int32) int64 {
	e.t.Helper()
	out := decode[[]tpo](e.t, e.ok("POST", "/committed/"+group+"/"+inst,
		fmt.Sprintf(`{"topic":%q,"partition":%d}`, topic, p)))
	require.Len(e.t, out, 1)
	return out[0].Offset
}

// consumeAll consumes until it holds n records or 10 s pass. One consume
// answers with what the first fetch brings: on Kafka, partitions led by
// different brokers can arrive in separate fetches.
func (e *env) consumeAll(group, inst, body string, n int, hdr ...string) []consumed {
	e.t.Helper()
	var got []consumed
	for deadline := time.Now().Add(10 * time.Second); len(got) < n && time.Now().Before(deadline); {
		got = append(got, e.consume(group, inst, body, hdr...)...)
	}
	return got
}

func values(ms []consumed) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Value
	}
	return out
}

func TestConsumeForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{
		memory.WithTopic("greetings", 1), memory.WithTopic("cities", 1), memory.WithTopic("words", 1)}})
	earliest := []string{"Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce", `[{"topic":"greetings","value":"hi"},{"topic":"cities","value":"Rome"},{"topic":"words","value":"w"}]`)

	// GET /consume/{group}/{instance}/{topic}?timeout=
	got := decode[[]consumed](t, e.ok("GET", "/consume/g1/i1/greetings?timeout=1000", "", earliest...))
	assert.Equal(t, []string{"hi"}, values(got))

	// POST {"topic"} and POST {"topics"} (the SDK's two shapes).
	assert.Equal(t, []string{"Rome"}, values(e.consume("g2", "i1", `{"topic":"cities","timeout":1000}`, earliest...)))
	got = e.consumeAll("g3", "i1", `{"topics":["greetings","cities","words"],"timeout":1000}`, 3, earliest...)
	assert.ElementsMatch(t, []string{"hi", "Rome", "w"}, values(got))

	// GET with a body; trailing slash.
	got = decode[[]consumed](t, e.ok("GET", "/consume/g4/i1/", `{"topic":"words"}`, earliest...))
	assert.Equal(t, []string{"w"}, values(got))
}

func TestConsumedMessageShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("mytopic", 1)}})
	e.ok("POST", "/produce/mytopic", `[{"timestamp":1637745824883,"value":"hello-world"},
		{"timestamp":1637745824884,"key":"k","value":"v\"\n","headers":[{"key":"h","value":"1"}]}]`)
	body := e.ok("POST", "/consume/g/i", `{"topic":"mytopic","timeout":1000}`, "Kafka-Auto-Offset-Reset", "earliest")
	// Key "" and headers [] when absent, exactly as the docs show.
	assert.JSONEq(t, `[
	 {"topic":"mytopic","partition":0,"offset":0,"timestamp":1637745824883,"key":"","value":"hello-world","headers":[]},
	 {"topic":"mytopic","partition":0,"offset":1,"timestamp":1637745824884,"key":"k","value":"v\"\n","headers":[{"key":"h","value":"1"}]}
	]`, body)
	assert.Equal(t, `{"topic":"mytopic","partition":0,"offset":0,"timestamp":1637745824883,"key":"","value":"hello-world","headers":[]}`,
		body[1:len(`{"topic":"mytopic","partition":0,"offset":0,"timestamp":1637745824883,"key":"","value":"hello-world","headers":[]}`)+1],
		"field order as documented")
}

func TestConsumeEmptyAfterTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		server: []restserver.Option{restserver.WithMaxTimeout(300 * time.Millisecond)},
	})
	start := time.Now()
	assert.Equal(t, "[]", e.ok("POST", "/consume/g/i", `{"topic":"t","timeout":100}`))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	// Clamped to the max timeout (300 ms here, 30 s by default).
	start = time.Now()
	assert.Equal(t, "[]", e.ok("GET", "/consume/g/i/t?timeout=600000", ""))
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	assert.Less(t, elapsed, 10*time.Second)
}

func TestConsumeDefaultTimeoutIsOneSecond(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	start := time.Now()
	assert.Equal(t, "[]", e.ok("POST", "/consume/g/i", `{"topic":"t"}`))
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, time.Second)
	assert.Less(t, elapsed, 10*time.Second)
}

func TestLongPollWakesOnProduce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	// Create the instance (latest: only records produced from now on).
	assert.Equal(t, "[]", e.ok("POST", "/consume/g/i", `{"topic":"t","timeout":0}`))

	n := e.srv.Stats().Requests
	type result struct {
		msgs    []consumed
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		msgs := e.consume("g", "i", `{"topic":"t","timeout":30000}`)
		done <- result{msgs, time.Since(start)}
	}()
	require.Eventually(t, func() bool { return e.srv.Stats().Requests > n }, 5*time.Second, time.Millisecond,
		"the long poll reaches the server")
	e.ok("GET", "/produce/t/wake-up", "")
	select {
	case r := <-done:
		assert.Equal(t, []string{"wake-up"}, values(r.msgs))
		assert.Less(t, r.elapsed, 10*time.Second, "answered on produce, not at the 30 s timeout")
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not wake on produce")
	}
}

func TestAutoOffsetReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.ok("GET", "/produce/t/old", "")

	// latest (the default): the old record is not delivered.
	assert.Empty(t, e.consume("latest", "i", `{"topic":"t","timeout":50}`))
	// earliest: it is.
	assert.Equal(t, []string{"old"}, values(e.consume("earliest", "i", `{"topic":"t","timeout":1000}`,
		"Kafka-Auto-Offset-Reset", "earliest")))

	// none: a clear 400 while the group has no committed offset, and the
	// instance is not created...
	msg := requireErrorBody(t, e.req("POST", "/consume/nonegroup/i", `{"topic":"t","timeout":50}`,
		"Kafka-Auto-Offset-Reset", "none"), http.StatusBadRequest)
	assert.Contains(t, msg, "no committed offset")
	assert.NotContains(t, e.ok("GET", "/consumers", ""), "nonegroup")
	// The refusal left no trace in the group: earliest still starts at 0.
	msg = requireErrorBody(t, e.req("POST", "/consume/fresh/a", `{"topic":"t","timeout":50}`,
		"Kafka-Auto-Offset-Reset", "none"), http.StatusBadRequest)
	assert.Contains(t, msg, "no committed offset")
	assert.Equal(t, []string{"old"}, values(e.consume("fresh", "b", `{"topic":"t","timeout":1000}`,
		"Kafka-Auto-Offset-Reset", "earliest")))
	// ...then, once the group has committed offset 0 through another
	// instance, none starts there.
	assert.Equal(t, "[]", e.ok("POST", "/consume/nonegroup/setter", `{"topic":"t","timeout":0}`,
		"Kafka-Enable-Auto-Commit", "false")) // else its close would commit its position (1)
	e.ok("POST", "/commit/nonegroup/setter", `{"topic":"t","partition":0,"offset":0}`)
	e.ok("POST", "/delete-consumer/nonegroup/setter", "")
	assert.Equal(t, []string{"old"}, values(e.consume("nonegroup", "i", `{"topic":"t","timeout":1000}`,
		"Kafka-Auto-Offset-Reset", "none")))
}

func TestConfigHeadersReadOnlyAtCreation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	e.ok("GET", "/produce/t/old", "")

	// A bad header on the creating request is a 400 and creates nothing.
	for _, h := range [][]string{
		{"Kafka-Enable-Auto-Commit", "maybe"},
		{"Kafka-Auto-Commit-Interval", "-5"},
		{"Kafka-Auto-Offset-Reset", "middle"},
		{"Kafka-Session-Timeout-Ms", "soon"},
	} {
		msg := requireErrorBody(t, e.req("POST", "/consume/g/i", `{"topic":"t","timeout":0}`, h...), http.StatusBadRequest)
		assert.Contains(t, msg, h[0])
	}
	assert.Equal(t, "[]", e.ok("GET", "/consumers", ""))

	// Created with latest; later headers change nothing (bad ones are ignored too).
	assert.Empty(t, e.consume("g", "i", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "latest"))
	assert.Empty(t, e.consume("g", "i", `{"topic":"t","timeout":50}`, "Kafka-Auto-Offset-Reset", "earliest"))
	assert.Empty(t, e.consume("g", "i", `{"topic":"t","timeout":50}`, "Kafka-Auto-Offset-Reset", "middle"))
}

func TestAutoCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	earliest := []string{"Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce/t", `[{"value":"a"},{"value":"b"}]`)

	t.Run("interval 0 commits at the next consume", func(t *testing.T) {
		hdr := append([]string{"Kafka-Auto-Commit-Interval", "0"}, earliest...)
		assert.Len(t, e.consume("zero", "i", `{"topic":"t","timeout":1000}`, hdr...), 2)
		assert.Equal(t, int64(0), e.committed("zero", "i", "t", 0), "the first consume committed the start position")
		assert.Empty(t, e.consume("zero", "i", `{"topic":"t","timeout":0}`, hdr...))
		assert.Equal(t, int64(2), e.committed("zero", "i", "t", 0), "positions committed at poll time")
	})
	t.Run("default interval: not yet, then on delete", func(t *testing.T) {
		assert.Len(t, e.consume("dflt", "i", `{"topic":"t","timeout":1000}`, earliest...), 2)
		assert.Empty(t, e.consume("dflt", "i", `{"topic":"t","timeout":0}`))
		assert.Equal(t, int64(-1), e.committed("dflt", "i", "t", 0), "5 s have not passed")
		e.ok("DELETE", "/delete-consumer/dflt/i", "")
		assert.Equal(t, int64(2), e.committed("dflt", "i", "t", 0), "committed on close, as a Kafka consumer does")
	})
	t.Run("disabled: never", func(t *testing.T) {
		hdr := append([]string{"Kafka-Enable-Auto-Commit", "false", "Kafka-Auto-Commit-Interval", "0"}, earliest...)
		assert.Len(t, e.consume("off", "i", `{"topic":"t","timeout":1000}`, hdr...), 2)
		assert.Empty(t, e.consume("off", "i", `{"topic":"t","timeout":0}`))
		e.ok("POST", "/delete-consumer/off/i", "")
		assert.Equal(t, int64(-1), e.committed("off", "i", "t", 0))
		// A new instance of the group starts over (earliest).
		assert.Len(t, e.consume("off", "j", `{"topic":"t","timeout":1000}`, hdr...), 2)
	})
}

func TestCommitForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cities", 2), memory.WithTopic("greetings", 1)}})
	noAuto := []string{"Kafka-Enable-Auto-Commit", "false", "Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce", `[{"topic":"cities","partition":0,"value":"a"},{"topic":"cities","partition":0,"value":"b"},
		{"topic":"greetings","value":"c"}]`)
	assert.Len(t, e.consumeAll("g", "i", `{"topics":["cities","greetings"],"timeout":1000}`, 3, noAuto...), 3)

	success := `{"result":"Success","status":200}`
	// One object, stored exactly as given (offset 0 stays 0: no +1).
	assert.Equal(t, success, e.ok("POST", "/commit/g/i", `{"topic":"cities","partition":1,"offset":0}`))
	assert.Equal(t, int64(0), e.committed("g", "i", "cities", 1))
	// An array.
	assert.Equal(t, success, e.ok("POST", "/commit/g/i",
		`[{"topic":"cities","partition":0,"offset":13},{"topic":"greetings","partition":0,"offset":19}]`))
	assert.Equal(t, int64(13), e.committed("g", "i", "cities", 0))
	assert.Equal(t, int64(19), e.committed("g", "i", "greetings", 0))
	// Empty body (the SDK's commit() without offset) and []: the consumed positions.
	assert.Equal(t, success, e.ok("POST", "/commit/g/i", ""))
	assert.Equal(t, int64(2), e.committed("g", "i", "cities", 0))
	assert.Equal(t, int64(1), e.committed("g", "i", "greetings", 0))
	e.ok("POST", "/commit/g/i", `{"topic":"cities","partition":0,"offset":0}`)
	assert.Equal(t, success, e.ok("POST", "/commit/g/i", "[]"))
	assert.Equal(t, int64(2), e.committed("g", "i", "cities", 0))
	// A plain GET with no body (the how-to's form).
	assert.Equal(t, success, e.ok("GET", "/commit/g/i", ""))

	// Committed: array form, and an empty body lists the instance's partitions.
	out := decode[[]tpo](t, e.ok("POST", "/committed/g/i?timeout=1000",
		`[{"topic":"cities","partition":0},{"topic":"greetings","partition":0}]`))
	assert.Equal(t, []tpo{{"cities", 0, 2}, {"greetings", 0, 1}}, out)
	out = decode[[]tpo](t, e.ok("GET", "/committed/g/i", ""))
	assert.Equal(t, []tpo{{"cities", 0, 2}, {"cities", 1, 0}, {"greetings", 0, 1}}, out)
	// Committed needs no live instance: it reads the group's offsets.
	assert.Equal(t, int64(2), e.committed("g", "other", "cities", 0))

	// Errors.
	requireErrorBody(t, e.req("POST", "/commit/g/nobody", ""), http.StatusNotFound)
	requireErrorBody(t, e.req("POST", "/commit/g/i", `{"topic":"cities","partition":0}`), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/commit/g/i", `{"topic":"cities","partition":0,"offset":-1}`), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/commit/g/i", `{"topic":"nope","partition":0,"offset":1}`), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/committed/g/i", `{"topic":"nope","partition":0}`), http.StatusNotFound)
	requireErrorBody(t, e.req("POST", "/committed/g/nobody", ""), http.StatusBadRequest)
	assert.Equal(t, int64(2), e.committed("g", "i", "cities", 0), "failed commits changed nothing")
}

func TestDeleteConsumer(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the partitions of a deleted instance move at the other members' next heartbeat and rebalance (about a second), not before the delete answers")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 2)}})
	assert.Empty(t, e.consume("g", "a", `{"topic":"t","timeout":0}`))
	assert.Empty(t, e.consume("g", "b", `{"topic":"t","timeout":0}`))

	success := `{"result":"Success","status":200}`
	assert.Equal(t, success, e.ok("POST", "/delete-consumer/g/a", ""))
	// b owns both partitions at once.
	groups := decode[[]groupAssignments](t, e.ok("GET", "/consumers", ""))
	require.Len(t, groups, 1)
	require.Len(t, groups[0].Instances, 1)
	assert.Equal(t, "b", groups[0].Instances[0].Name)
	assert.Equal(t, []int32{0, 1}, groups[0].Instances[0].Topics[0].Partitions)

	assert.Equal(t, success, e.ok("DELETE", "/delete-consumer/g/b", ""))
	assert.Equal(t, "[]", e.ok("GET", "/consumers", ""))

	msg := requireErrorBody(t, e.req("POST", "/delete-consumer/g/b", ""), http.StatusNotFound)
	assert.Contains(t, msg, `"b"`)
	requireErrorBody(t, e.req("DELETE", "/delete-consumer/nogroup/x", ""), http.StatusNotFound)

	// A deleted instance can be made again.
	assert.Empty(t, e.consume("g", "a", `{"topic":"t","timeout":0}`))
	assert.Equal(t, 1, e.srv.Stats().Instances)
}

func TestDeleteDuringLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	assert.Empty(t, e.consume("g", "i", `{"topic":"t","timeout":0}`))
	n := e.srv.Stats().Requests
	done := make(chan reply, 1)
	go func() { done <- e.req("POST", "/consume/g/i", `{"topic":"t","timeout":30000}`) }()
	require.Eventually(t, func() bool { return e.srv.Stats().Requests > n }, 5*time.Second, time.Millisecond)
	e.ok("POST", "/delete-consumer/g/i", "")
	// The long poll is counted when it arrives, before it takes the
	// instance. Either it held the instance, and the delete ends it (404:
	// instance deleted), or it took the instance only after the delete: it
	// then made a new one (nothing else here makes one), holds it, and
	// polls for 30 s; that instance is deleted too, which must end it the
	// same way. A 200 at all, or no answer within 20 s, is a failure.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deletes := 1
	for {
		select {
		case r := <-done:
			if r.status == http.StatusOK {
				t.Fatalf("unexpected success: %s", r.body)
			}
			requireErrorBody(t, r, http.StatusNotFound)
			t.Logf("the long poll ended after %d delete(s)", deletes)
			return
		case <-tick.C:
			if e.srv.Stats().Instances > 0 {
				e.ok("POST", "/delete-consumer/g/i", "") // the new instance, which the long poll holds
				deletes++
			}
		case <-deadline:
			t.Fatalf("long poll on a deleted instance did not end (%d deletes)", deletes)
		}
	}
}

func TestGroupSplitsPartitions(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "Kafka assigns through the group coordinator's rebalance rounds, one member at a time, not the embedded broker's split at join")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cities", 4), memory.WithTopic("words", 1)}})
	assert.Empty(t, e.consume("mygroup", "instance-1", `{"topics":["cities","words"],"timeout":0}`))
	assert.Empty(t, e.consume("mygroup", "instance-2", `{"topic":"cities","timeout":0}`))
	assert.Empty(t, e.consume("other", "x", `{"topic":"words","timeout":0}`))

	// §6.4 shape, sorted.
	assert.Equal(t, `[{"name":"mygroup","instances":[`+
		`{"name":"instance-1","topics":[{"topic":"cities","partitions":[0,1]},{"topic":"words","partitions":[0]}]},`+
		`{"name":"instance-2","topics":[{"topic":"cities","partitions":[2,3]}]}]},`+
		`{"name":"other","instances":[{"name":"x","topics":[{"topic":"words","partitions":[0]}]}]}]`,
		e.ok("GET", "/consumers", ""))

	// Each record goes to the instance owning its partition.
	e.ok("POST", "/produce/cities", `[{"partition":0,"value":"p0"},{"partition":3,"value":"p3"}]`)
	assert.Equal(t, []string{"p0"}, values(e.consume("mygroup", "instance-1", `{"topics":["cities","words"],"timeout":1000}`)))
	assert.Equal(t, []string{"p3"}, values(e.consume("mygroup", "instance-2", `{"topic":"cities","timeout":1000}`)))
}

func TestResubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("a", 1), memory.WithTopic("b", 1)}})
	hdr := []string{"Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/produce", `[{"topic":"a","value":"from-a"},{"topic":"b","value":"from-b"}]`)
	assert.Equal(t, []string{"from-a"}, values(e.consume("g", "i", `{"topic":"a","timeout":1000}`, hdr...)))

	// Naming other topics re-subscribes; the configuration (earliest) is kept.
	assert.Equal(t, []string{"from-b"}, values(e.consume("g", "i", `{"topic":"b","timeout":1000}`)))
	groups := decode[[]groupAssignments](t, e.ok("GET", "/consumers", ""))
	require.Len(t, groups, 1)
	require.Len(t, groups[0].Instances[0].Topics, 1)
	assert.Equal(t, "b", groups[0].Instances[0].Topics[0].Topic)
	// The positions reached on a were committed before leaving it (auto-commit).
	assert.Equal(t, int64(1), e.committed("g", "i", "a", 0))

	// Same set in another order or with duplicates does not re-subscribe.
	e.ok("POST", "/produce/a", `{"value":"a2"}`)
	got := e.consume("g", "i", `{"topics":["b","a","b"],"timeout":1000}`)
	assert.Equal(t, []string{"a2"}, values(got))
	got = e.consume("g", "i", `{"topics":["a","b"],"timeout":0}`)
	assert.Empty(t, got, "positions kept: a2 not delivered twice")
}

func TestIdleInstancesExpire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		server: []restserver.Option{restserver.WithInstanceExpiry(100 * time.Millisecond)},
	})
	e.ok("POST", "/produce/t", `{"value":"x"}`)
	assert.Len(t, e.consume("g", "i", `{"topic":"t","timeout":1000}`, "Kafka-Auto-Offset-Reset", "earliest"), 1)
	require.Eventually(t, func() bool { return e.srv.Stats().Instances == 0 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, "[]", e.ok("GET", "/consumers", ""))
	assert.Equal(t, int64(1), e.committed("g", "i", "t", 0), "auto-commit on expiry")
	requireErrorBody(t, e.req("POST", "/delete-consumer/g/i", ""), http.StatusNotFound)

	// An instance in a long poll longer than the expiry is not expired.
	assert.Empty(t, e.consume("g", "busy", `{"topic":"t","timeout":0}`))
	r := e.req("POST", "/consume/g/busy", `{"topic":"t","timeout":600}`)
	assert.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "[]", r.body)
}

func TestConcurrentConsumesOfOneInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	const n = 50
	var recs []string
	for i := range n {
		recs = append(recs, fmt.Sprintf(`{"value":"%d"}`, i))
	}
	e.ok("POST", "/produce/t", "["+strings.Join(recs, ",")+"]")
	hdr := []string{"Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				for _, m := range e.consume("g", "i", `{"topic":"t","timeout":20}`, hdr...) {
					mu.Lock()
					seen[m.Value]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	assert.Len(t, seen, n, "every record delivered")
	for v, c := range seen {
		assert.Equal(t, 1, c, "record %s delivered once", v)
	}
}
