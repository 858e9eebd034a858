package restserver_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// produceValues writes n records of size bytes each to partition p of topic.
func (e *env) produceValues(topic string, p, n, size int) {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"topic":%q,"partition":%d,"value":"%s"}`, topic, p, strings.Repeat(string(rune('a'+i%26)), size))
	}
	b.WriteString("]")
	e.ok("POST", "/produce", b.String())
}

// TestFetchAnswerCappedInBytes: a /fetch answer stops adding records once
// the per-partition or total byte cap is reached, but always carries at
// least one record so a reader makes progress (finding 1).
func TestFetchAnswerCappedInBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("big", 2)},
		server: []restserver.Option{restserver.WithFetchMaxBytes(10_000), restserver.WithFetchMaxPartitionBytes(4_000)},
	})
	e.produceValues("big", 0, 20, 1000)
	e.produceValues("big", 1, 20, 1000)

	one := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"big","partition":0,"offset":0}`))
	assert.NotEmpty(t, one)
	assert.Less(t, len(one), 5, "partition cap of 4000 bytes")

	both := decode[[]consumed](t, e.ok("POST", "/fetch",
		`{"topicPartitionOffsets":[{"topic":"big","partition":0,"offset":0},{"topic":"big","partition":1,"offset":0}]}`))
	assert.NotEmpty(t, both)
	assert.Less(t, len(both), 10, "total cap of 10000 bytes")

	// A record over both caps still comes, alone.
	e.produceValues("big", 0, 1, 20_000)
	huge := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"big","partition":0,"offset":20}`))
	require.Len(t, huge, 1)
	assert.Len(t, huge[0].Value, 20_000)
}

// TestFetchRepeatedPartitionsMerged: a partition listed several times is
// read once (finding 1: three entries used to triple the answer).
func TestFetchRepeatedPartitionsMerged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("rep", 1)}})
	e.produceValues("rep", 0, 3, 10)
	got := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"rep","partition":0,"offset":1,
		"topicPartitionOffsets":[{"topic":"rep","partition":0,"offset":0},{"topic":"rep","partition":0,"offset":2}]}`))
	var offs []int64
	for _, m := range got {
		offs = append(offs, m.Offset)
	}
	assert.Equal(t, []int64{0, 1, 2}, offs, "merged at the lowest offset, each record once")
}

// TestFetchTooManyPartitions: a fetch naming more partitions than the cap
// is a clear 400, and the server stays up (finding 4).
func TestFetchTooManyPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("many", 20)},
		server: []restserver.Option{restserver.WithFetchMaxPartitions(10)},
	})
	var list []string
	for p := range 11 {
		list = append(list, fmt.Sprintf(`{"topic":"many","partition":%d,"offset":0}`, p))
	}
	r := e.req("POST", "/fetch", `{"topicPartitionOffsets":[`+strings.Join(list, ",")+`],"timeout":0}`)
	msg := requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, msg, "10")
	e.ok("POST", "/fetch", `{"topicPartitionOffsets":[`+strings.Join(list[:10], ",")+`],"timeout":0}`)
}

// TestFetchWaitsWithOneWaiter: a waiting fetch over many partitions does
// not start a goroutine per partition (finding 4), and still wakes on a
// record on any of them.
func TestFetchWaitsWithOneWaiter(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	const parts = 300
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("wide", parts)}})
	var list []string
	for p := range parts {
		list = append(list, fmt.Sprintf(`{"topic":"wide","partition":%d,"offset":0}`, p))
	}
	base := runtime.NumGoroutine()
	done := make(chan reply, 1)
	go func() {
		done <- e.req("POST", "/fetch", `{"topicPartitionOffsets":[`+strings.Join(list, ",")+`],"timeout":10000}`)
	}()
	peak := 0
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		peak = max(peak, runtime.NumGoroutine())
		time.Sleep(5 * time.Millisecond)
	}
	assert.Less(t, peak-base, 50, "goroutines while one fetch waits on %d partitions", parts)
	e.ok("POST", "/produce", `{"topic":"wide","partition":299,"value":"late"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case r := <-done:
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, []string{"late"}, values(decode[[]consumed](t, r.body)))
	case <-ctx.Done():
		t.Fatal("the fetch did not wake on a record")
	}
}

// TestConsumeAnswerCappedInBytes: /consume answers are capped by the
// broker's poll byte limits, and the records left out come next (none
// lost).
func TestConsumeAnswerCappedInBytes(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the test sets the byte caps as embedded-broker options; on Kafka they are the brokers' and the consumer's fetch settings")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cb", 1), memory.WithFetchMaxBytes(10_000, 4_000)}})
	hdr := []string{"Kafka-Auto-Offset-Reset", "earliest"}
	e.ok("POST", "/consume/g/i", `{"topic":"cb","timeout":0}`, hdr...)
	e.produceValues("cb", 0, 20, 1000)
	var seen []int64
	for range 40 {
		got := decode[[]consumed](t, e.ok("POST", "/consume/g/i", `{"topic":"cb","timeout":1000}`, hdr...))
		assert.LessOrEqual(t, len(got), 4)
		for _, m := range got {
			seen = append(seen, m.Offset)
		}
		if len(seen) >= 20 {
			break
		}
	}
	want := make([]int64, 20)
	for i := range want {
		want[i] = int64(i)
	}
	assert.Equal(t, want, seen)
}

// TestCommitPastEndResets: a commit of offset 9223372036854775807 does not
// strand the group; its next consumer resets by Kafka-Auto-Offset-Reset, as
// Kafka's auto.offset.reset does for an out-of-range offset (finding 7).
func TestCommitPastEndResets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("far", 1)}})
	hdr := []string{"Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
	e.ok("POST", "/consume/g/i1", `{"topic":"far","timeout":0}`, hdr...)
	e.ok("POST", "/commit/g/i1", `{"topic":"far","partition":0,"offset":9223372036854775807}`)
	e.ok("POST", "/delete-consumer/g/i1", "")
	e.produceValues("far", 0, 2, 3)
	var got []consumed
	for i := 0; i < 20 && len(got) < 2; i++ {
		got = append(got, decode[[]consumed](t, e.ok("POST", "/consume/g/i2", `{"topic":"far","timeout":1000}`, hdr...))...)
	}
	require.Len(t, got, 2)
	assert.Equal(t, int64(0), got[0].Offset)
}

// TestRejectedProduceCreatesNoTopics: a produce refused for one record
// creates none of the topics it names (finding 3).
func TestRejectedProduceCreatesNoTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	r := e.req("POST", "/produce", `[{"topic":"new1","value":"a"},{"topic":"new2","value":"b"},{"topic":"new3","partition":5,"value":"c"}]`)
	requireErrorBody(t, r, http.StatusBadRequest)
	assert.Equal(t, "{}", e.ok("GET", "/topics", ""))
}

// TestTopicCapIsClear400: auto-creation past the topic cap is a clear 400
// that creates nothing, and the server keeps serving (finding 3).
func TestTopicCapIsClear400(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the topic cap is an embedded-broker option; on Kafka it is the cluster's business")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithMaxTopics(3, 100)}})
	r := e.req("POST", "/produce", `[{"topic":"a","value":"1"},{"topic":"b","value":"1"},{"topic":"c","value":"1"},{"topic":"d","value":"1"}]`)
	msg := requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, msg, "limit of 3 topics")
	assert.Equal(t, "{}", e.ok("GET", "/topics", ""))
	e.ok("POST", "/produce", `[{"topic":"a","value":"1"},{"topic":"b","value":"1"},{"topic":"c","value":"1"}]`)
}

// TestGroupAndInstanceNameLength: group and instance names longer than 249
// bytes (Kafka's topic name rule) are a clear 400 on every route that
// names them; a group without committed offsets whose last instance is
// deleted is gone from the broker (finding 5).
func TestGroupAndInstanceNameLength(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "the embedded broker's group list is inspected; Kafka keeps an empty group until offsets.retention")
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("n", 1)}})
	ok := strings.Repeat("g", 249)
	long := strings.Repeat("g", 250)
	for _, path := range []string{"/consume/" + long + "/i", "/consume/g/" + long, "/commit/" + long + "/i",
		"/committed/g/" + long, "/delete-consumer/" + long + "/i"} {
		r := e.req("POST", path, `{"topic":"n","timeout":0}`)
		msg := requireErrorBody(t, r, http.StatusBadRequest)
		assert.Contains(t, msg, "249", path)
	}
	assert.Empty(t, e.broker.Groups(), "a refused name makes no group")

	e.ok("POST", "/consume/"+ok+"/"+ok, `{"topic":"n","timeout":0}`, "Kafka-Enable-Auto-Commit", "false")
	require.Len(t, e.broker.Groups(), 1)
	e.ok("POST", "/delete-consumer/"+ok+"/"+ok, "")
	assert.Empty(t, e.broker.Groups(), "the group of the last instance deleted is deleted")
	assert.Equal(t, "[]", e.ok("GET", "/consumers", ""))
}

// TestOverflowingHeaderValues: configuration header values too large for
// Kafka's int milliseconds are a clear 400, not a negative duration
// (finding 14).
func TestOverflowingHeaderValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("h", 1)}})
	for _, h := range []string{"Kafka-Session-Timeout-Ms", "Kafka-Auto-Commit-Interval", "Kafka-Max-Poll-Interval-Ms"} {
		for _, v := range []string{"9223372036854775807", "2147483648", "99999999999999999999"} {
			r := e.req("POST", "/consume/g/i", `{"topic":"h","timeout":0}`, h, v)
			msg := requireErrorBody(t, r, http.StatusBadRequest)
			assert.Contains(t, msg, h, v)
			assert.Contains(t, msg, "2147483647", "%s: %s", h, v)
			assert.NotContains(t, msg, "negative", "%s: %s", h, v)
		}
	}
	e.ok("POST", "/consume/g/i", `{"topic":"h","timeout":0}`, "Kafka-Session-Timeout-Ms", "2147483647")
}

// TestBasicWithoutColon: Basic credentials that are not base64 of
// user:password get a message that says so (finding 14).
func TestBasicWithoutColon(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, v := range []string{"Basic dQ==", "Basic !!!", "basic dQ=="} {
		r := e.req("GET", "/topics", "", "Authorization", v)
		msg := requireErrorBody(t, r, http.StatusUnauthorized)
		assert.Contains(t, msg, "username:password", v)
		assert.NotContains(t, msg, "must use HTTP Basic", v)
	}
}

// TestErrorTextHasNoInternals: error bodies name JSON fields and kinds, not
// the server's Go types or packages (finding 13).
func TestErrorTextHasNoInternals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, c := range [][2]string{
		{"/produce", `{"topic":"a","partition":"x","value":"v"}`},
		{"/fetch", `{"topic":"a","partition":"x"}`},
		{"/consume/g/i", `{"topics":"a"}`},
		{"/commit/g/i", `{"topic":"a","partition":0,"offset":"x"}`},
		{"/produce/a", `{"headers":[{"key":1}]}`},
		{"/produce", `{"topic":"a b","value":"v"}`},
	} {
		msg := requireErrorBody(t, e.req("POST", c[0], c[1]), http.StatusBadRequest)
		for _, bad := range []string{"Go struct", "int32", "int64", "[]string", "memory:", "transport:", "json:"} {
			assert.NotContains(t, msg, bad, "%s %s", c[0], c[1])
		}
	}
	msg := requireErrorBody(t, e.req("POST", "/produce", `{"topic":"a","partition":"x","value":"v"}`), http.StatusBadRequest)
	assert.Contains(t, msg, `field "partition" must be a whole number`)
}

// TestFailedLoginsAreLimited: after the failed login limit an address gets
// 429 with Retry-After, even with the right credentials, so guessing gains
// nothing (finding 14).
func TestFailedLoginsAreLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{server: []restserver.Option{restserver.WithFailedLoginLimit(3)}})
	for range 3 {
		requireErrorBody(t, e.req("GET", "/topics", "", "Authorization", "Basic "+basic(testUser, "guess")), http.StatusUnauthorized)
	}
	r := e.req("GET", "/topics", "")
	msg := requireErrorBody(t, r, http.StatusTooManyRequests)
	assert.Contains(t, msg, "failed logins")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
}
