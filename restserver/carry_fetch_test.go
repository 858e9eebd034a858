package restserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The carried produce of POST /fetch: a "produce" field in the fetch body
// (carry.go, handleFetch). Over newCarryEnv: "in" holds "request" at
// offset 0, "out" is empty.

// fetchIn is a fetch of "in" from offset off with a timeout of ms.
func fetchIn(off int64, ms int, more string) string {
	return `{"topicPartitionOffsets":[{"topic":"in","partition":0,"offset":` + strconv.FormatInt(off, 10) +
		`}],"timeout":` + strconv.Itoa(ms) + more + `}`
}

func TestCarryFetchProducesThenFetches(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	r := e.req("POST", "/fetch", fetchIn(0, 5000, `,"produce":[`+
		`{"topic":"out","value":"reply","key":"k","headers":[{"key":"h","value":"v"}]},{"topic":"out","value":"marker"}]`))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	meta := decode[[]metadata](t, r.header.Get(restserver.ProducedHeader))
	require.Len(t, meta, 2)
	for i, m := range meta {
		assert.Equal(t, "out", m.Topic)
		assert.Equal(t, int32(0), m.Partition)
		assert.Equal(t, int64(i), m.Offset)
		assert.Positive(t, m.Timestamp)
	}
	assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, r.body)))
	// Records found at once: one plain answer, its length known (no
	// early flush, no chunking).
	assert.NotEmpty(t, r.header.Get("Content-Length"))

	out := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"out","partition":0,"offset":0,"timeout":0}`))
	require.Equal(t, []string{"reply", "marker"}, values(out))
	assert.Equal(t, "k", out[0].Key)
	assert.Equal(t, []header{{Key: "h", Value: "v"}}, out[0].Headers)

	// The records are written before the fetch reads: a fetch of the
	// topic it produces to reads them. A single object is a batch of one.
	r = e.req("POST", "/fetch", `{"topic":"out","partition":0,"offset":2,"timeout":5000,"produce":{"topic":"out","value":"self"}}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Len(t, decode[[]metadata](t, r.header.Get(restserver.ProducedHeader)), 1)
	assert.Equal(t, []string{"self"}, values(decode[[]consumed](t, r.body)))
}

// Every fetch answer says the server takes "produce"; one without it (or
// with null) is answered as before, without Kafka-Produced. An empty
// array produces nothing and is answered [].
func TestCarryFetchAdvertised(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	for _, body := range []string{fetchIn(0, 0, ""), fetchIn(0, 0, `,"produce":null`), fetchIn(0, 0, `,"commit":null`)} {
		r := e.req("POST", "/fetch", body)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
		assert.Empty(t, r.header.Values(restserver.ProducedHeader))
		assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, r.body)))
	}
	r := e.req("POST", "/fetch", fetchIn(0, 0, `,"produce":[]`))
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.Equal(t, "[]", r.header.Get(restserver.ProducedHeader))
	// Error answers say it too.
	r = e.req("POST", "/fetch", `{"nothing":1}`)
	requireErrorBody(t, r, http.StatusBadRequest)
	assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
	r = e.req("GET", "/fetch", "")
	requireErrorBody(t, r, http.StatusBadRequest)
	assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
}

// The produce's answer is sent before the fetch waits: the headers arrive
// while the server still waits for records, and the records follow.
func TestCarryFetchAnswersProduceBeforeWait(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/fetch",
		strings.NewReader(fetchIn(1, 20000, `,"produce":[{"topic":"out","value":"reply"}]`)))
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	start := time.Now()
	resp, err := e.client.Do(req) // returns once the headers are in
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Less(t, time.Since(start), 10*time.Second, "the headers must not wait for the long poll")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	meta := decode[[]metadata](t, resp.Header.Get(restserver.ProducedHeader))
	require.Len(t, meta, 1)
	assert.Equal(t, "out", meta[0].Topic)
	assert.Equal(t, int64(1), e.latest("out", 0), "written while the fetch still waits")

	e.ok("POST", "/produce/in", `{"value":"next"}`)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, []string{"next"}, values(decode[[]consumed](t, string(body))))
}

// A refused produce, or a fetch refused before it, is answered as /produce
// (or /fetch) answers it, without Kafka-Produced: nothing is written and
// nothing read.
func TestCarryFetchRefusedWritesNothing(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t, restserver.WithMaxMessageBytes(64))
	var many strings.Builder
	many.WriteString(`[`)
	for i := range restserver.MaxCarriedRecords + 1 {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString(`{"topic":"out","value":"v"}`)
	}
	many.WriteString(`]`)
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"unknown topic", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"},{"topic":"nope","value":"b"}]`), http.StatusNotFound, "nope"},
		{"too large", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"},{"topic":"out","value":"`+strings.Repeat("x", 65)+`"}]`), http.StatusRequestEntityTooLarge, "over the limit"},
		{"too many", fetchIn(0, 0, `,"produce":`+many.String()), http.StatusRequestEntityTooLarge, "POST /produce"},
		{"no value", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"},{"topic":"out"}]`), http.StatusBadRequest, "value is required"},
		{"no topic", fetchIn(0, 0, `,"produce":[{"value":"a"}]`), http.StatusBadRequest, "topic is required"},
		{"not records", fetchIn(0, 0, `,"produce":"x"`), http.StatusBadRequest, "malformed JSON"},
		{"bad record", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a","partition":"0"}]`), http.StatusBadRequest, "malformed JSON"},
		{"bad partition", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"},{"topic":"out","value":"b","partition":5}]`), http.StatusBadRequest, "partition"},
		{"not JSON", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"},]`), http.StatusBadRequest, "malformed JSON"},
		{"commit", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"}],"commit":[{"topic":"in","partition":0,"offset":1}]`), http.StatusBadRequest, "commit"},
		{"commit alone", fetchIn(0, 0, `,"commit":{}`), http.StatusBadRequest, "commit"},
		{"bad fetch", `{"partition":0,"produce":[{"topic":"out","value":"a"}]}`, http.StatusBadRequest, "topic is required"},
		{"bad timeout", fetchIn(0, -1, `,"produce":[{"topic":"out","value":"a"}]`), http.StatusBadRequest, "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.req("POST", "/fetch", c.body)
			msg := requireErrorBody(t, r, c.status)
			assert.Contains(t, msg, c.want)
			assert.Empty(t, r.header.Values(restserver.ProducedHeader))
			assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
			assert.Equal(t, int64(0), e.latest("out", 0), "nothing of the refused produce is written")
		})
	}
}

// A fetch that fails after its records were written (here: it reads a
// topic that does not exist) answers the fetch's error, with
// Kafka-Produced: the client learns that its records were written.
func TestCarryFetchErrorAfterProduce(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	r := e.req("POST", "/fetch", `{"topic":"nope","partition":0,"offset":0,"timeout":0,"produce":[{"topic":"out","value":"reply"}]}`)
	requireErrorBody(t, r, http.StatusNotFound)
	require.Len(t, decode[[]metadata](t, r.header.Get(restserver.ProducedHeader)), 1)
	assert.Equal(t, int64(1), e.latest("out", 0))
}

// waitFails is a backend whose WaitAny fails at once, as when a fetched
// topic is deleted during the wait.
type waitFails struct{ restserver.Backend }

func (waitFails) WaitAny(context.Context, []transport.Offset) error {
	return fmt.Errorf("topic deleted during the wait: %w", transport.ErrUnknownTopic)
}

// A fetch that fails after its headers went out (here: its wait fails)
// answers the error in the body of its 200 answer, in the API's error
// shape; the produce stays written.
func TestCarryFetchErrorAfterHeadersIsInBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		wrap:   func(b restserver.Backend) restserver.Backend { return waitFails{b} },
	})
	r := e.req("POST", "/fetch", fetchIn(0, 5000, `,"produce":[{"topic":"out","value":"reply"}]`))
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Len(t, decode[[]metadata](t, r.header.Get(restserver.ProducedHeader)), 1)
	msg := requireErrorBody(t, reply{status: http.StatusNotFound, header: r.header, body: r.body}, http.StatusNotFound)
	assert.Contains(t, msg, "deleted during the wait")
	assert.Equal(t, int64(1), e.latest("out", 0))

	// Without records carried, the same fault is a plain error answer.
	requireErrorBody(t, e.req("POST", "/fetch", fetchIn(0, 5000, "")), http.StatusNotFound)
}

// The rights are /produce's for the records and /fetch's for the rest: a
// user without either is refused before anything is written or read.
func TestCarryFetchPermissions(t *testing.T) {
	t.Parallel()
	rw := restserver.User{Name: "rw", Password: "rw-pass",
		Consume: []restserver.TopicPattern{"in"}, Produce: []restserver.TopicPattern{"out"}}
	e := newCarryEnv(t, restserver.WithUsers(rw))
	asRW := basicAuth("rw", "rw-pass")

	r := e.req("POST", "/fetch", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"reply"}]`), asRW...)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Len(t, decode[[]metadata](t, r.header.Get(restserver.ProducedHeader)), 1)
	assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, r.body)))

	// rw may not produce to "in": nothing written.
	r = e.req("POST", "/fetch", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"},{"topic":"in","value":"b"}]`), asRW...)
	requireForbidden(t, r, `"in"`)
	assert.Empty(t, r.header.Values(restserver.ProducedHeader))
	assert.Equal(t, int64(1), e.latest("out", 0))
	assert.Equal(t, int64(1), e.latest("in", 0))

	// rw may not read "out": nothing produced.
	r = e.req("POST", "/fetch", `{"topic":"out","partition":0,"offset":0,"timeout":0,"produce":[{"topic":"out","value":"a"}]}`, asRW...)
	requireForbidden(t, r, `"out"`)
	assert.Empty(t, r.header.Values(restserver.ProducedHeader))
	assert.Equal(t, int64(1), e.latest("out", 0))

	// Wrong credentials: 401, nothing produced.
	r = e.req("POST", "/fetch", fetchIn(0, 0, `,"produce":[{"topic":"out","value":"a"}]`), basicAuth("rw", "wrong")...)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, int64(1), e.latest("out", 0))
}

// A carried produce needs POST, on /fetch and /consume alike: an HTTP
// client may send a GET again by itself (Go's does on a reused connection
// that drops), which would write the records twice unseen.
func TestCarryProduceRefusedOnGet(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	r := e.req("GET", "/fetch", fetchIn(0, 0, `,"produce":{"topic":"out","value":"x"}`))
	requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, r.body, "POST")
	assert.Empty(t, r.header.Get(restserver.ProducedHeader))
	r = e.req("GET", "/consume/g/i", `{"topic":"in","timeout":0,"produce":{"topic":"out","value":"x"}}`)
	requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, r.body, "POST")
	assert.Equal(t, "[]", e.ok("POST", "/fetch", `{"topic":"out","partition":0,"offset":0,"timeout":0}`), "nothing was written")
	// Without "produce" a GET is served as before.
	assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, e.ok("GET", "/fetch", fetchIn(0, 0, "")))))
}
