package restserver_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestFetchForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{
		memory.WithTopic("greetings", 2), memory.WithTopic("cities", 1), memory.WithTopic("words", 1)}})
	e.ok("POST", "/produce", `[
		{"topic":"greetings","partition":1,"value":"g0"},{"topic":"greetings","partition":1,"value":"g1"},
		{"topic":"cities","value":"c0"},{"topic":"words","value":"w0"},{"topic":"words","value":"w1"}]`)

	tests := []struct {
		name, method, path, body string
		want                     []string
	}{
		{"single triple", "POST", "/fetch", `{"topic":"greetings","partition":1,"offset":1,"timeout":1000}`,
			[]string{"g1"}},
		{"trailing slash (the how-to's form)", "POST", "/fetch/", `{"topic":"greetings","partition":1,"offset":0}`,
			[]string{"g0", "g1"}},
		{"GET with body", "GET", "/fetch", `{"topic":"cities","partition":0,"offset":0}`, []string{"c0"}},
		{"offset and partition default to 0", "POST", "/fetch", `{"topic":"words"}`, []string{"w0", "w1"}},
		{"topicPartitionOffsets, request order, several topics", "POST", "/fetch",
			`{"topicPartitionOffsets":[{"topic":"words","partition":0,"offset":1},{"topic":"greetings","partition":1,"offset":0},
			  {"topic":"greetings","partition":0,"offset":0}],"timeout":5000}`,
			[]string{"w1", "g0", "g1"}},
		{"both combined, the triple first", "POST", "/fetch",
			`{"topic":"words","partition":0,"offset":0,"topicPartitionOffsets":[{"topic":"cities","partition":0,"offset":0}],"timeout":5000}`,
			[]string{"w0", "w1", "c0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decode[[]consumed](t, e.ok(tt.method, tt.path, tt.body))
			assert.Equal(t, tt.want, values(got))
		})
	}

	// Fetch is group-free: reading again gives the same records.
	got := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"cities","partition":0,"offset":0}`))
	assert.Equal(t, []string{"c0"}, values(got))
	assert.Equal(t, "cities", got[0].Topic)
	assert.Equal(t, int64(0), got[0].Offset)
	assert.Equal(t, "", got[0].Key)
	assert.Equal(t, []header{}, got[0].Headers)
}

func TestFetchWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("a", 1), memory.WithTopic("b", 1)},
		server: []restserver.Option{restserver.WithFetchMaxRecords(2)},
	})

	start := time.Now()
	assert.Equal(t, "[]", e.ok("POST", "/fetch", `{"topic":"a","partition":0,"offset":0,"timeout":100}`))
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	// A fetch waiting on two partitions wakes on a record in either.
	n := e.srv.Stats().Requests
	done := make(chan []consumed, 1)
	go func() {
		done <- decode[[]consumed](t, e.ok("POST", "/fetch",
			`{"topicPartitionOffsets":[{"topic":"a","partition":0,"offset":0},{"topic":"b","partition":0,"offset":0}],"timeout":30000}`))
	}()
	require.Eventually(t, func() bool { return e.srv.Stats().Requests > n }, 5*time.Second, time.Millisecond)
	e.ok("GET", "/produce/b/late", "")
	select {
	case got := <-done:
		assert.Equal(t, []string{"late"}, values(got))
	case <-time.After(20 * time.Second):
		t.Fatal("fetch did not wake on produce")
	}

	// At most the record limit per partition.
	e.ok("POST", "/produce/a", `[{"value":"1"},{"value":"2"},{"value":"3"}]`)
	got := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"a","partition":0,"offset":0}`))
	assert.Equal(t, []string{"1", "2"}, values(got))
}

func TestTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{
		memory.WithTopic("cities", 12), memory.WithTopic("greetings", 1), memory.WithTopic("words", 137)}})
	assert.Equal(t, `{"cities":12,"greetings":1,"words":137}`, e.ok("GET", "/topics", ""))
	assert.Equal(t, `{"cities":12,"greetings":1,"words":137}`, e.ok("GET", "/topics/", ""))
}

func TestOffsets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cities", 2), memory.WithTopic("greetings", 1)}})
	base := int64(1_700_000_000_000) // ms, a whole second
	e.ok("POST", "/produce", fmt.Sprintf(`[
		{"topic":"cities","partition":0,"timestamp":%d,"value":"a"},
		{"topic":"cities","partition":0,"timestamp":%d,"value":"b"},
		{"topic":"cities","partition":0,"timestamp":%d,"value":"c"},
		{"topic":"greetings","timestamp":%d,"value":"g"}]`, base, base+1500, base+3000, base))

	assert.Equal(t, []tpo{{"cities", 0, 0}, {"greetings", 0, 0}}, decode[[]tpo](t, e.ok("POST", "/offsets/earliest",
		`[{"topic":"cities","partition":0},{"topic":"greetings","partition":0}]`)))
	assert.Equal(t, []tpo{{"cities", 0, 3}}, decode[[]tpo](t, e.ok("POST", "/offsets/latest?timeout=1000",
		`{"topic":"cities","partition":0}`)))
	assert.Equal(t, []tpo{{"cities", 1, 0}}, decode[[]tpo](t, e.ok("GET", "/offsets/latest", `{"topic":"cities","partition":1}`)))

	// Timestamps: ms, and seconds below 1e11 (the docs' and SDK tests' form).
	tests := []struct {
		ts   string
		want int64
	}{
		{fmt.Sprint(base), 0},
		{fmt.Sprint(base + 1), 1},
		{fmt.Sprint(base + 1500), 1},
		{fmt.Sprint(base + 1501), 2},
		{fmt.Sprint(base / 1000), 0},       // seconds
		{fmt.Sprint(base/1000 + 2), 2},     // base+2000 ms
		{fmt.Sprint(base + 10_000_000), 3}, // after the last: latest
	}
	for _, tt := range tests {
		got := decode[[]tpo](t, e.ok("POST", "/offsets/"+tt.ts, `{"topic":"cities","partition":0}`))
		assert.Equal(t, []tpo{{"cities", 0, tt.want}}, got, "ts %s", tt.ts)
	}

	requireErrorBody(t, e.req("POST", "/offsets/yesterday", `{"topic":"cities","partition":0}`), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/offsets/latest", ``), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/offsets/latest", `{"topic":"cities"}`), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/offsets/latest", `{"topic":"cities","partition":9}`), http.StatusBadRequest)
	requireErrorBody(t, e.req("POST", "/offsets/latest", `{"topic":"nope","partition":0}`), http.StatusNotFound)
	requireErrorBody(t, e.req("POST", "/offsets/latest?timeout=soon", `{"topic":"cities","partition":0}`), http.StatusBadRequest)
}
