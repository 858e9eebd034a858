package restserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// record reads the record at offset straight from the broker.
func (e *env) record(topic string, partition int32, offset int64) transport.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := e.backend.Fetch(ctx, transport.Offset{Topic: topic, Partition: partition, Offset: offset}, 1)
	require.NoError(e.t, err)
	require.Len(e.t, msgs, 1)
	return msgs[0]
}

func TestProducePathForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cities", 1), memory.WithAutoCreate(false)}})

	before := time.Now().UnixMilli()
	body := e.ok("GET", "/produce/cities/Istanbul?key=city", "")
	md := decode[metadata](t, body) // one object, not an array
	assert.Equal(t, "cities", md.Topic)
	assert.Equal(t, int32(0), md.Partition)
	assert.Equal(t, int64(0), md.Offset)
	assert.GreaterOrEqual(t, md.Timestamp, before)
	assert.Equal(t, fmt.Sprintf(`{"topic":"cities","partition":0,"offset":0,"timestamp":%d}`, md.Timestamp), body)

	rec := e.record("cities", 0, 0)
	assert.Equal(t, "city", rec.Key)
	assert.Equal(t, "Istanbul", string(rec.Value))
	assert.Empty(t, rec.Headers)

	// Percent-escaped path segments are unescaped; a trailing slash is fine.
	md = decode[metadata](t, e.ok("GET", "/produce/cities/hello%20w%C3%B6rld%2Fx/", ""))
	assert.Equal(t, "hello wörld/x", string(e.record("cities", 0, md.Offset).Value))
}

func TestProduceBodyForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{
		memory.WithTopic("greetings", 1), memory.WithTopic("cities", 3), memory.WithAutoCreate(false)}})

	tests := []struct {
		name, method, path, body string
		want                     []metadata // topic and partition checked
		values                   []string
	}{
		{"topic path, one object", "POST", "/produce/greetings", `{"value":"hello_world"}`,
			[]metadata{{Topic: "greetings"}}, []string{"hello_world"}},
		{"topic path, array", "POST", "/produce/greetings",
			`[{"value": "hello_world"}, {"value": "hello_upstash"}, {"value": "hello_kafka"}]`,
			[]metadata{{Topic: "greetings"}, {Topic: "greetings"}, {Topic: "greetings"}},
			[]string{"hello_world", "hello_upstash", "hello_kafka"}},
		{"topic path, GET with body", "GET", "/produce/greetings", `{"value":"via GET"}`,
			[]metadata{{Topic: "greetings"}}, []string{"via GET"}},
		{"topic path, trailing slash", "POST", "/produce/greetings/", `{"value":"slash"}`,
			[]metadata{{Topic: "greetings"}}, []string{"slash"}},
		{"topic path ignores body topic", "POST", "/produce/greetings", `{"topic":"cities","value":"path wins"}`,
			[]metadata{{Topic: "greetings"}}, []string{"path wins"}},
		{"produce, one object", "POST", "/produce", `{"topic":"cities","partition":2,"value":"Ankara"}`,
			[]metadata{{Topic: "cities", Partition: 2}}, []string{"Ankara"}},
		{"produce, array keeps request order", "POST", "/produce",
			`[{"topic": "greetings", "value": "hello_world"},
			  {"topic": "cities", "partition": 1, "value": "Istanbul"},
			  {"topic": "greetings", "value": "bye"}]`,
			[]metadata{{Topic: "greetings"}, {Topic: "cities", Partition: 1}, {Topic: "greetings"}},
			[]string{"hello_world", "Istanbul", "bye"}},
		{"produce, GET with body", "GET", "/produce", `[{"topic":"cities","partition":0,"value":"Izmir"}]`,
			[]metadata{{Topic: "cities", Partition: 0}}, []string{"Izmir"}},
		{"non-string values keep their JSON text", "POST", "/produce/greetings",
			`[{"value":{"a":[1,2]}},{"value":42},{"value":true},{"value":"esc\"aped\n\u00e9"}]`,
			[]metadata{{Topic: "greetings"}, {Topic: "greetings"}, {Topic: "greetings"}, {Topic: "greetings"}},
			[]string{`{"a":[1,2]}`, "42", "true", "esc\"aped\né"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mds := decode[[]metadata](t, e.ok(tt.method, tt.path, tt.body))
			require.Len(t, mds, len(tt.want))
			for i, md := range mds {
				assert.Equal(t, tt.want[i].Topic, md.Topic)
				assert.Equal(t, tt.want[i].Partition, md.Partition)
				assert.Equal(t, tt.values[i], string(e.record(md.Topic, md.Partition, md.Offset).Value))
			}
		})
	}
}

func TestProduceKeyHeadersTimestamp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cities", 2)}})

	body := e.ok("POST", "/produce/cities",
		`{"partition": 1, "timestamp": 1637745834744, "key": "city", "value": "Istanbul",
		  "headers": [{"key": "expire", "value": "1637745834756"}, {"key": "expire", "value": "2"}]}`)
	assert.Equal(t, `[{"topic":"cities","partition":1,"offset":0,"timestamp":1637745834744}]`, body)
	rec := e.record("cities", 1, 0)
	assert.Equal(t, "city", rec.Key)
	assert.Equal(t, int64(1637745834744), rec.Time.UnixMilli())
	assert.Equal(t, []transport.Header{{Key: "expire", Value: "1637745834756"}, {Key: "expire", Value: "2"}}, rec.Headers)

	// The same key lands on the same partition when none is given.
	a := decode[[]metadata](t, e.ok("POST", "/produce/cities", `{"key":"k1","value":"a"}`))
	b := decode[[]metadata](t, e.ok("POST", "/produce/cities", `{"key":"k1","value":"b"}`))
	assert.Equal(t, a[0].Partition, b[0].Partition)
}

func TestProduceIgnoresContentType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
	// curl -d sends application/x-www-form-urlencoded; the body is JSON all the same.
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", ""} {
		mds := decode[[]metadata](t, e.ok("POST", "/produce/t", `{"value":"v"}`, "Content-Type", ct))
		require.Len(t, mds, 1)
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("my-app-events", 1), memory.WithAutoCreate(false)}})

	payload := `{"id":"evt_1","type":"invoice.paid"}`
	body := e.ok("POST", "/webhook?topic=my-app-events", payload,
		"Content-Type", "application/json; charset=utf-8",
		"User-Agent", "Stripe/1.0",
		"Accept", "*/*",
		"Stripe-Signature", "t=1642628041,v1=abc",
		"Event-Origin", "my-app",
		"X-Forwarded-For", "10.0.0.1")
	md := decode[metadata](t, body) // one object
	assert.Equal(t, "my-app-events", md.Topic)
	rec := e.record("my-app-events", 0, md.Offset)
	assert.Equal(t, payload, string(rec.Value))
	assert.Empty(t, rec.Key)
	// Non-standard headers only, sorted by name.
	assert.Equal(t, []transport.Header{
		{Key: "Event-Origin", Value: "my-app"},
		{Key: "Stripe-Signature", Value: "t=1642628041,v1=abc"},
	}, rec.Headers)

	// Credentials in the query instead of Basic auth; binary body kept as is.
	raw := "\x00\x01\xffbinary"
	md = decode[metadata](t, e.ok("POST", "/webhook?topic=my-app-events&user="+testUser+"&pass="+testPass, raw,
		"Authorization", "-"))
	assert.Equal(t, raw, string(e.record("my-app-events", 0, md.Offset).Value))

	// GET works too (empty value).
	md = decode[metadata](t, e.ok("GET", "/webhook?topic=my-app-events", ""))
	assert.Empty(t, e.record("my-app-events", 0, md.Offset).Value)

	msg := requireErrorBody(t, e.req("POST", "/webhook", "x"), http.StatusBadRequest)
	assert.Contains(t, msg, "topic")
	msg = requireErrorBody(t, e.req("POST", "/webhook?topic=nope", "x"), http.StatusNotFound)
	assert.Contains(t, msg, "nope")
}

func TestProduceMessageLimitWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		server: []restserver.Option{restserver.WithMaxMessageBytes(100)},
	})
	// Exactly at the limit: key + value + header key + header value = 100.
	at := fmt.Sprintf(`{"key":"kk","value":"%s","headers":[{"key":"h","value":"v"}]}`, strings.Repeat("x", 96))
	e.ok("POST", "/produce/t", at)
	require.Equal(t, int64(1), e.latest("t", 0))

	over := fmt.Sprintf(`[{"value":"ok"},{"value":"%s"}]`, strings.Repeat("x", 101))
	msg := requireErrorBody(t, e.req("POST", "/produce/t", over), http.StatusRequestEntityTooLarge)
	assert.Contains(t, msg, "message 1")
	assert.Contains(t, msg, "limit of 100 bytes")
	assert.Equal(t, int64(1), e.latest("t", 0), "nothing of a refused request is written")

	requireErrorBody(t, e.req("GET", "/produce/t/"+strings.Repeat("y", 101), ""), http.StatusRequestEntityTooLarge)
	requireErrorBody(t, e.req("POST", "/webhook?topic=t", strings.Repeat("z", 101)), http.StatusRequestEntityTooLarge)
	assert.Equal(t, int64(1), e.latest("t", 0))

	e.ok("GET", "/produce/t/still-serving", "")
}
