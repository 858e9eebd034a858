package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

func TestTail(t *testing.T) {
	t.Parallel()
	s := startService(t)
	start(t, s.env, "serve", "reports", "--echo")
	tail := start(t, s.env, "tail", "reports", "kafkarpc-cli.replies", "--json", "--count", "3", "--payload")
	waitFor(t, "tail to start", func() bool { return strings.Contains(tail.stderr.String(), "tailing reports, kafkarpc-cli.replies") })

	r := runCLI(t, s.env, "", "call", "reports", `{"q":1}`, "--method", "monthly", "--header", "traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.Equal(t, 0, r.code)
	id := jsonLines(t, runCLI(t, s.env, "", "call", "reports", `{"q":2}`, "--json").stdout)[0]["id"]

	<-tail.done
	require.Equal(t, 0, tail.code, "--count 3 ends the tail")
	lines := jsonLines(t, tail.stdout.String())
	require.Len(t, lines, 3)
	byKind := map[string][]map[string]any{}
	for _, l := range lines {
		env := l["envelope"].(map[string]any)
		byKind[env["kind"].(string)] = append(byKind[env["kind"].(string)], l)
	}
	require.Len(t, byKind["request"], 2, "%v", lines)
	require.Len(t, byKind["reply"], 1, "%v", lines)
	req, reply := byKind["request"][0], byKind["reply"][0]
	assert.Equal(t, "reports", req["topic"])
	assert.Equal(t, "monthly", req["envelope"].(map[string]any)["method"])
	assert.Equal(t, "kafkarpc-cli", req["envelope"].(map[string]any)["from"])
	assert.Equal(t, "kafkarpc-cli.replies", req["envelope"].(map[string]any)["reply_to"])
	assert.Equal(t, map[string]any{"q": 1.0}, req["value"])
	assert.Contains(t, req["headers"], []any{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	assert.Equal(t, req["envelope"].(map[string]any)["id"], reply["envelope"].(map[string]any)["correlation"])
	assert.Contains(t, reply, "latency_ms", "the reply's request was seen")
	assert.NotEqual(t, id, reply["envelope"].(map[string]any)["correlation"])

	// Text mode, ended by --for.
	tail = start(t, s.env, "tail", "reports", "kafkarpc-cli.replies", "--for", "30s")
	waitFor(t, "tail to start", func() bool { return strings.Contains(tail.stderr.String(), "tailing") })
	require.Equal(t, 0, runCLI(t, s.env, "", "call", "reports", "1").code)
	waitFor(t, "the reply line", func() bool { return strings.Contains(tail.stdout.String(), " reply ") })
	out := tail.stdout.String()
	assert.Regexp(t, `reports\[\d\]@\d+ request  id=\S+ from=kafkarpc-cli`, out)
	assert.Regexp(t, `kafkarpc-cli.replies\[\d\]@\d+ reply    id=\S+ correlation=\S+ from=kafkarpc-cli latency=\S+`, out)
	tail.stop(t)
	assert.Equal(t, 0, tail.code, "SIGTERM ends a tail normally")
}

// TestDLQ dead-letters a request (its command keeps failing transiently),
// lists and shows it, and replays it: kept by id, the server's dedup
// window answers it again without running it; with --fresh-id it runs.
func TestDLQ(t *testing.T) {
	t.Parallel()
	s := startService(t)
	runs := filepath.Join(t.TempDir(), "runs")
	start(t, s.env, "serve", "reports", "--retries", "2", "--exec", `echo "$RPC_ID" >> `+runs+`; echo 'disk full' >&2; exit 75`)

	r := runCLI(t, s.env, "", "call", "reports", `{"month":"2024-05"}`, "--method", "monthly", "--key", "k", "--header", "x-tenant=acme")
	require.Equal(t, 1, r.code)
	assert.Equal(t, "error unavailable: disk full\n", r.stdout)
	require.Equal(t, 2, countLines(t, runs), "two attempts, then the dead letter")

	r = runCLI(t, s.env, "", "dlq", "list", "reports", "--json")
	require.Equal(t, 0, r.code)
	letters := jsonLines(t, r.stdout)
	require.Len(t, letters, 1)
	l := letters[0]
	id := l["id"].(string)
	assert.Equal(t, "retries_exhausted", l["reason"])
	assert.Equal(t, "unavailable", l["code"])
	assert.Equal(t, "disk full", l["error"])
	assert.Equal(t, "reports", l["topic"])
	assert.Equal(t, "monthly", l["method"])

	r = runCLI(t, s.env, "", "dlq", "list", "reports.dlq") // the dlq topic's own name works too
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "reason=retries_exhausted code=unavailable id="+id)
	assert.Contains(t, r.stdout, "1 dead letters in reports.dlq")

	r = runCLI(t, s.env, "", "dlq", "show", "reports", "--id", id)
	require.Equal(t, 0, r.code)
	for _, want := range []string{"x-tenant: acme", "dlq-reason: retries_exhausted", "rpc-id: " + id, `"month": "2024-05"`} {
		assert.Contains(t, r.stdout, want)
	}
	oneLineErr(t, runCLI(t, s.env, "", "dlq", "show", "reports", "--id", "nope"), 2, "no dead letter in reports.dlq matches")

	// Watch the reply topic: the replayed request is answered again, from
	// the dedup window, and that answer is our sign it was handled.
	tail := start(t, s.env, "tail", "kafkarpc-cli.replies", "--json")
	waitFor(t, "tail to start", func() bool { return strings.Contains(tail.stderr.String(), "tailing") })
	r = runCLI(t, s.env, "", "dlq", "replay", "reports", "--id", id)
	require.Equal(t, 0, r.code)
	assert.Equal(t, "replayed 1 dead letters (1 to reports)\n", r.stdout)
	waitFor(t, "the stored reply sent again", func() bool { return strings.Contains(tail.stdout.String(), `"correlation":"`+id+`"`) })
	assert.Contains(t, tail.stdout.String(), `"code":"unavailable"`)
	assert.Equal(t, 2, countLines(t, runs), "the dedup window answered the replayed request: not run again")

	// What the replay wrote: the original headers without the dlq-* ones.
	replayed := lastRecord(t, s, "reports")
	assert.Equal(t, "k", replayed.Key)
	assert.JSONEq(t, `{"month":"2024-05"}`, string(replayed.Value))
	for _, h := range replayed.Headers {
		assert.False(t, strings.HasPrefix(h.Key, "dlq-"), "header %s", h.Key)
	}
	v, _ := replayed.Header("x-tenant")
	assert.Equal(t, "acme", v)
	v, _ = replayed.Header(rpc.HeaderID)
	assert.Equal(t, id, v)

	// --fresh-id, selected by offset: a new request, run again (and
	// dead-lettered again, as the command still fails).
	r = runCLI(t, s.env, "", "dlq", "replay", "reports", "--offset", "0-0", "--partition", int32s(l["partition"]), "--fresh-id", "--json")
	require.Equal(t, 0, r.code)
	assert.Equal(t, map[string]any{"kind": "replayed", "count": 1.0, "topics": map[string]any{"reports": 1.0}}, jsonLines(t, r.stdout)[0])
	waitFor(t, "the fresh request to run twice", func() bool { return countLines(t, runs) == 4 })
	waitFor(t, "the second dead letter", func() bool {
		return len(jsonLines(t, runCLI(t, s.env, "", "dlq", "list", "reports", "--json").stdout)) == 2
	})
}

// TestDLQReplayRefused: a replay that cannot write every record writes none.
func TestDLQReplayRefused(t *testing.T) {
	t.Parallel()
	s := startService(t)
	ctx := context.Background()
	letter := func(topic string) transport.Message {
		return transport.Message{Topic: "reports.dlq", Value: []byte(`{"n":1}`), Headers: []transport.Header{
			{Key: rpc.HeaderVersion, Value: "1"}, {Key: rpc.HeaderID, Value: "id-" + topic}, {Key: rpc.HeaderKind, Value: "notify"},
			{Key: rpc.HeaderDLQReason, Value: "unknown_route"}, {Key: rpc.HeaderDLQTopic, Value: topic}}}
	}
	_, err := s.srv.Broker.Produce(ctx, letter("reports"), letter("ghost"))
	require.NoError(t, err)

	r := runCLI(t, s.env, "", "dlq", "replay", "reports", "--all")
	oneLineErr(t, r, 2, "nothing was replayed", "ghost")
	r = runCLI(t, s.env, "", "dlq", "replay", "reports", "--id", "id-reports", "--to", "ghost")
	oneLineErr(t, r, 2, "nothing was replayed", "ghost")
	for p := int32(0); p < 2; p++ {
		_, latest, err := s.srv.Broker.Offsets("reports", p)
		require.NoError(t, err)
		assert.Zero(t, latest, "nothing was copied to reports")
	}
	// The good one alone goes through.
	r = runCLI(t, s.env, "", "dlq", "replay", "reports", "--id", "id-reports")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "replayed 1 dead letters (1 to reports)\n", r.stdout)
}

// lastRecord is the newest record of topic, over its partitions.
func lastRecord(t *testing.T, s *service, topic string) transport.Message {
	t.Helper()
	var last transport.Message
	for p := int32(0); p < s.srv.Broker.Topics()[topic]; p++ {
		earliest, latest, err := s.srv.Broker.Offsets(topic, p)
		require.NoError(t, err)
		if latest == earliest {
			continue
		}
		ms, err := s.srv.Broker.Fetch(context.Background(), topic, p, latest-1, 1)
		require.NoError(t, err)
		if len(ms) == 1 && ms[0].Time.After(last.Time) {
			last = ms[0]
		}
	}
	require.NotEmpty(t, last.Topic, "no record in %s", topic)
	return last
}

// int32s formats a JSON number as a flag value.
func int32s(v any) string { return strconv.Itoa(int(v.(float64))) }
