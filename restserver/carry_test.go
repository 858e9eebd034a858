package restserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The carried produce: POST /consume with a "produce" field (carry.go).

// newCarryEnv serves topics "in" and "out" (one partition each, no
// auto-creation), with "in" holding one record.
func newCarryEnv(t *testing.T, server ...restserver.Option) *env {
	t.Helper()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		server: server,
	})
	e.ok("POST", "/produce/in", `{"value":"request"}`)
	return e
}

var earliest = []string{"Kafka-Auto-Offset-Reset", "earliest"}

// requireNothingConsumed checks that instance g/i still gets the record of
// "in" from a plain consume: the refused carried consume moved nothing.
func requireNothingConsumed(t *testing.T, e *env, g, i string) {
	t.Helper()
	got := e.consume(g, i, `{"topics":["in"],"timeout":5000}`, earliest...)
	require.Equal(t, []string{"request"}, values(got))
}

func TestCarryProducesThenConsumes(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	r := e.req("POST", "/consume/g/i", `{"topics":["in"],"timeout":5000,"produce":[`+
		`{"topic":"out","value":"reply","key":"k","headers":[{"key":"h","value":"v"}]},{"topic":"out","value":"marker"}]}`, earliest...)
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

	out := e.consume("g2", "i", `{"topics":["out"],"timeout":5000}`, earliest...)
	require.Equal(t, []string{"reply", "marker"}, values(out))
	assert.Equal(t, "k", out[0].Key)
	assert.Equal(t, []header{{Key: "h", Value: "v"}}, out[0].Headers)
}

// A plain consume is answered as before, with the extension advertised
// and no Kafka-Produced.
func TestCarryAdvertisedOnPlainConsume(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	for _, body := range []string{`{"topics":["in"],"timeout":0}`, `{"topics":["in"],"timeout":0,"produce":null}`} {
		r := e.req("POST", "/consume/g/i", body, earliest...)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
		assert.Empty(t, r.header.Values(restserver.ProducedHeader))
		assert.NotEmpty(t, r.header.Get("Content-Length"))
	}
}

// The produce's answer is sent before the long poll: the headers arrive
// while the server still waits for records, and the records follow.
func TestCarryAnswersProduceBeforeLongPoll(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	e.consume("g", "i", `{"topics":["in"],"timeout":5000}`, earliest...) // takes "request"

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/consume/g/i",
		strings.NewReader(`{"topics":["in"],"timeout":20000,"produce":[{"topic":"out","value":"reply"}]}`))
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
	// Written already, while the consume still waits.
	assert.Equal(t, int64(1), e.latest("out", 0))

	e.ok("POST", "/produce/in", `{"value":"next"}`)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, []string{"next"}, values(decode[[]consumed](t, string(body))))
}

// A failed produce is answered as /produce answers it, without
// Kafka-Produced; nothing is written and nothing consumed.
func TestCarryFailedProduceConsumesNothing(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t, restserver.WithMaxMessageBytes(64))
	for _, c := range []struct {
		name, produce string
		status        int
		want          string
	}{
		{"unknown topic", `[{"topic":"out","value":"a"},{"topic":"nope","value":"b"}]`, http.StatusNotFound, "nope"},
		{"too large", `[{"topic":"out","value":"a"},{"topic":"out","value":"` + strings.Repeat("x", 65) + `"}]`, http.StatusRequestEntityTooLarge, "over the limit"},
		{"no value", `[{"topic":"out","value":"a"},{"topic":"out"}]`, http.StatusBadRequest, "value is required"},
		{"no topic", `[{"value":"a"}]`, http.StatusBadRequest, "topic is required"},
		{"not records", `"x"`, http.StatusBadRequest, "malformed JSON"},
		{"bad record", `[{"topic":"out","value":"a","partition":"0"}]`, http.StatusBadRequest, "malformed JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst := strings.ReplaceAll(c.name, " ", "-")
			r := e.req("POST", "/consume/g-"+inst+"/i", `{"topics":["in"],"timeout":0,"produce":`+c.produce+`}`, earliest...)
			msg := requireErrorBody(t, r, c.status)
			assert.Contains(t, msg, c.want)
			assert.Empty(t, r.header.Values(restserver.ProducedHeader))
			assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
			assert.Equal(t, int64(0), e.latest("out", 0), "nothing of the refused produce is written")
			requireNothingConsumed(t, e, "g-"+inst, "i")
		})
	}
}

// The rights are /produce's for the records and /consume's for the rest:
// a user without either is refused before anything is written or read.
func TestCarryPermissions(t *testing.T) {
	t.Parallel()
	e := newPermEnv(t)
	e.ok("POST", "/produce/orders", `{"value":"request"}`, asWriter...)

	// reader may consume orders but not produce to it.
	r := e.req("POST", "/consume/g/r", `{"topics":["orders"],"timeout":0,"produce":[{"topic":"orders","value":"x"}]}`,
		append(asReader, earliest...)...)
	requireForbidden(t, r, "orders")
	assert.Empty(t, r.header.Values(restserver.ProducedHeader))
	got := e.consume("g", "r", `{"topics":["orders"],"timeout":5000}`, append(asReader, earliest...)...)
	require.Equal(t, []string{"request"}, values(got), "the refused consume moved nothing")

	// writer may produce to orders but not consume it: nothing produced.
	r = e.req("POST", "/consume/g/w", `{"topics":["orders"],"timeout":0,"produce":[{"topic":"orders","value":"x"}]}`,
		append(asWriter, earliest...)...)
	requireForbidden(t, r, "orders")
	assert.Empty(t, r.header.Values(restserver.ProducedHeader))
	assert.Equal(t, int64(1), e.latest("orders", 0), "nothing produced by a refused consume")

	// Wrong credentials: 401, nothing produced.
	r = e.req("POST", "/consume/g/x", `{"topics":["orders"],"timeout":0,"produce":[{"topic":"orders","value":"x"}]}`,
		basicAuth("writer", "wrong")...)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, int64(1), e.latest("orders", 0))
}

// A consume that fails after its headers went out (here: the instance is
// deleted during the long poll) answers the error in the body of its 200
// answer, in the API's error shape; the produce stays written.
func TestCarryErrorAfterHeadersIsInBody(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	e.consume("g", "i", `{"topics":["in"],"timeout":5000}`, earliest...) // joined, "request" taken

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/consume/g/i",
		strings.NewReader(`{"topics":["in"],"timeout":20000,"produce":[{"topic":"out","value":"reply"}]}`))
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get(restserver.ProducedHeader))

	e.ok("POST", "/delete-consumer/g/i", "")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	msg := requireErrorBody(t, reply{status: http.StatusNotFound, header: http.Header{"Content-Type": {"application/json"}}, body: string(body)}, http.StatusNotFound)
	assert.Contains(t, msg, "deleted")
	assert.Equal(t, int64(1), e.latest("out", 0))
}

// A consume may carry a commit: committed (fenced, as /commit with
// Kafka-Commit-Fenced: true) once the instance is joined, before the long
// poll, the outcome in Kafka-Committed.
func TestCarryCommit(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	e.consume("g", "i", `{"topics":["in"],"timeout":5000}`, earliest...) // joined, "request" (offset 0) read
	e.ok("POST", "/produce/in", `{"value":"next"}`)

	r := e.req("POST", "/consume/g/i", `{"topics":["in"],"timeout":5000,"commit":[{"topic":"in","partition":0,"offset":1}]}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.JSONEq(t, `{"result":"Success","status":200}`, r.header.Get(restserver.CommittedHeader))
	assert.Empty(t, r.header.Values(restserver.ProducedHeader))
	assert.Equal(t, []string{"next"}, values(decode[[]consumed](t, r.body)))
	assert.Equal(t, int64(1), e.committed("g", "i", "in", 0))

	// A partition the instance does not own: refused as /commit refuses
	// it, in the header; the consume goes on.
	r = e.req("POST", "/consume/g/i", `{"topics":["in"],"timeout":0,"commit":{"topic":"out","partition":0,"offset":1}}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var refused struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.header.Get(restserver.CommittedHeader)), &refused))
	assert.Equal(t, http.StatusBadRequest, refused.Status)
	assert.Contains(t, refused.Error, "not assigned")
	assert.Equal(t, int64(1), e.committed("g", "i", "in", 0))

	// Offsets as /commit checks them: a bad one refuses the whole request,
	// before the produce it carries.
	r = e.req("POST", "/consume/g/i", `{"topics":["in"],"timeout":0,"commit":[{"topic":"in","partition":0}],"produce":[{"topic":"out","value":"x"}]}`)
	msg := requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, msg, "offset is required")
	assert.Equal(t, int64(0), e.latest("out", 0))
}

func TestCarryCommitPermissions(t *testing.T) {
	t.Parallel()
	e := newPermEnv(t)
	e.ok("POST", "/produce/orders", `{"value":"request"}`, asWriter...)
	e.consume("g", "r", `{"topics":["orders"],"timeout":5000}`, append(asReader, earliest...)...)
	// reader may not consume "secret": its commit is refused, 403.
	r := e.req("POST", "/consume/g/r", `{"topics":["orders"],"timeout":0,"commit":[{"topic":"secret","partition":0,"offset":1}]}`, asReader...)
	requireForbidden(t, r, "secret")
	assert.Empty(t, r.header.Values(restserver.CommittedHeader))
}
