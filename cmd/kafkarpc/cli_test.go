package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	env := cleanEnv()
	r := runCLI(t, env, "", "--help")
	require.Equal(t, 0, r.code)
	for _, c := range commands {
		assert.Contains(t, r.stdout, "  "+c.name+" ")
		h := runCLI(t, env, "", c.name, "--help")
		require.Equal(t, 0, h.code, c.name)
		assert.Contains(t, h.stdout, "Usage: kafkarpc "+c.name, c.name)
		assert.Contains(t, h.stdout, "Example:\n  kafkarpc "+c.name, c.name)
		assert.Contains(t, h.stdout, "-json", c.name)
	}
	r = runCLI(t, env, "")
	require.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "Usage: kafkarpc COMMAND", "no command: the usage, on stderr")
	oneLineErr(t, runCLI(t, env, "", "frobnicate"), 2, `unknown command "frobnicate"`)
}

func TestCall(t *testing.T) {
	t.Parallel()
	s := startService(t)
	start(t, s.env, "serve", "reports", "--exec",
		`printf '{"method":"%s","key":"%s","from":"%s","in":%s}' "$RPC_METHOD" "$RPC_KEY" "$RPC_FROM" "$(cat)"`)

	r := runCLI(t, s.env, "", "call", "reports", `{"n":1}`, "--method", "monthly", "--key", "k1", "--timeout", "30s")
	require.Equal(t, 0, r.code)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), "text mode prints the reply's JSON, indented")
	assert.Equal(t, map[string]any{"method": "monthly", "key": "k1", "from": "kafkarpc-cli", "in": map[string]any{"n": 1.0}}, got)
	assert.Contains(t, r.stdout, "\n  \"in\"")

	// Flags before the topic, the payload from stdin, --json output, a header.
	r = runCLI(t, s.env, "[1, 2]\n", "call", "--json", "reports", "-", "--header", "traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.Equal(t, 0, r.code)
	lines := jsonLines(t, r.stdout)
	require.Len(t, lines, 1)
	assert.Equal(t, "reply", lines[0]["kind"])
	assert.Equal(t, true, lines[0]["ok"])
	assert.Equal(t, []any{1.0, 2.0}, lines[0]["reply"].(map[string]any)["in"])
	assert.NotEmpty(t, lines[0]["id"])
	assert.Greater(t, lines[0]["latency_ms"], 0.0)

	// No payload sends null.
	r = runCLI(t, s.env, "", "call", "reports")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, `"in": null`)
}

func TestCallErrorReply(t *testing.T) {
	t.Parallel()
	s := startService(t)
	start(t, s.env, "serve", "reports", "--exec", `echo "looking..." >&2; echo "not_found: no report $(cat)" >&2; exit 3`)

	r := runCLI(t, s.env, "", "call", "reports", "42")
	require.Equal(t, 1, r.code, "an error reply exits 1")
	assert.Equal(t, "error not_found: no report 42\n", r.stdout)

	r = runCLI(t, s.env, "", "call", "reports", "43", "--json")
	require.Equal(t, 1, r.code)
	lines := jsonLines(t, r.stdout)
	require.Len(t, lines, 1)
	assert.Equal(t, map[string]any{"kind": "error", "ok": false, "code": "not_found", "message": "no report 43", "latency_ms": lines[0]["latency_ms"]}, lines[0])
}

func TestCallExecFailures(t *testing.T) {
	t.Parallel()
	s := startService(t)
	start(t, s.env, "serve", "reports", "--exec", `case "$RPC_METHOD" in
		plain) echo 'not json at all' ;;
		crash) echo 'segfault-ish' >&2; exit 139 ;;
		silent) exit 4 ;;
	esac`)
	r := runCLI(t, s.env, "", "call", "reports", "--method", "plain", "--json")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "not json at all", jsonLines(t, r.stdout)[0]["reply"], "text output becomes a JSON string")

	r = runCLI(t, s.env, "", "call", "reports", "--method", "crash")
	require.Equal(t, 1, r.code)
	assert.Equal(t, "error internal: segfault-ish (exit status 139)\n", r.stdout)

	r = runCLI(t, s.env, "", "call", "reports", "--method", "silent")
	require.Equal(t, 1, r.code)
	assert.Equal(t, "error internal: the command exited with status 4\n", r.stdout)
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	s := startService(t) // nobody serves reports
	r := runCLI(t, s.env, "", "call", "reports", "{}", "--timeout", "300ms")
	require.Equal(t, 1, r.code, "the request was sent; no reply is an rpc outcome")
	assert.Contains(t, r.stdout, "error deadline_exceeded")

	r = runCLI(t, s.env, "", "call", "reports", "{}", "--timeout", "300ms", "--json")
	require.Equal(t, 1, r.code)
	assert.Equal(t, "deadline_exceeded", jsonLines(t, r.stdout)[0]["code"])
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startService(t, restserver.WithCredentials("alice", "s3cret"))
	good := append(s.env[:len(s.env):len(s.env)], "UPSTASH_KAFKA_REST_USERNAME=alice", "UPSTASH_KAFKA_REST_PASSWORD=s3cret")
	bad := append(s.env[:len(s.env):len(s.env)], "UPSTASH_KAFKA_REST_USERNAME=alice", "UPSTASH_KAFKA_REST_PASSWORD=wrong")

	// A closed port: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	cases := []struct {
		name     string
		env      []string
		stdin    string
		args     []string
		contains []string
	}{
		{"unknown topic", good, "", []string{"call", "nosuch", "{}"}, []string{`"nosuch"`, "does not exist"}},
		{"unknown topic notify", good, "", []string{"notify", "nosuch", "{}"}, []string{"nosuch"}},
		{"unknown topic send", good, "", []string{"send", "nosuch", "{}"}, []string{"nosuch"}},
		{"unknown topic tail", good, "", []string{"tail", "nosuch"}, []string{"nosuch"}},
		{"unknown topic bench", good, "", []string{"bench", "nosuch"}, []string{"nosuch"}},
		{"unknown reply topic", good, "", []string{"call", "reports", "--name", "nobody"}, []string{"nobody.replies"}},
		// A missing dead-letter topic is no error: "no dead letters: topic
		// nosuch.dlq does not exist", exit 0 (TestA15DLQOfMissingTopicCreatesNothing).
		{"bad JSON", good, "", []string{"call", "reports", "{bad"}, []string{"not valid JSON"}},
		{"bad JSON on stdin", good, `{"a":`, []string{"call", "reports", "-"}, []string{"not valid JSON"}},
		{"unquoted JSON", good, "", []string{"call", "reports", "{a:", "1}"}, []string{"too many arguments"}},
		{"missing topic", good, "", []string{"call"}, []string{"missing TOPIC"}},
		{"missing topic notify", good, "", []string{"notify"}, []string{"missing TOPIC"}},
		{"missing topic serve", good, "", []string{"serve", "--echo"}, []string{"missing TOPIC"}},
		{"missing topic tail", good, "", []string{"tail"}, []string{"missing TOPIC"}},
		{"missing dlq args", good, "", []string{"dlq", "list"}, []string{"list|show|replay TOPIC"}},
		{"unknown dlq action", good, "", []string{"dlq", "purge", "reports"}, []string{`"purge"`}},
		{"replay without selection", good, "", []string{"dlq", "replay", "reports"}, []string{"--id, --offset or --all"}},
		{"bad offset range", good, "", []string{"dlq", "list", "reports", "--offset", "9-3"}, []string{"N-M"}},
		{"serve without a mode", good, "", []string{"serve", "reports"}, []string{"--echo and --exec"}},
		{"serve with both modes", good, "", []string{"serve", "reports", "--echo", "--exec", "cat"}, []string{"--echo and --exec"}},
		{"bad header", good, "", []string{"call", "reports", "--header", "novalue"}, []string{"key=value"}},
		{"reserved header", good, "", []string{"call", "reports", "--header", "rpc-id=x"}, []string{"reserved"}},
		{"method with slash", good, "", []string{"call", "reports", "--method", "a/b"}, []string{"'/'"}},
		{"unknown flag", good, "", []string{"call", "reports", "--frob"}, []string{"frob"}},
		{"bad timeout", good, "", []string{"call", "reports", "--timeout", "-1s"}, []string{"--timeout"}},
		{"wrong password", bad, "", []string{"call", "reports", "{}"}, []string{"401", "check --username/--password"}},
		{"wrong password tail", bad, "", []string{"tail", "reports"}, []string{"401"}},
		{"wrong password dlq", bad, "", []string{"dlq", "list", "reports"}, []string{"401"}},
		{"no credentials", s.env, "", []string{"notify", "reports", "{}"}, []string{"401"}},
		{"unreachable", cleanEnv(), "", []string{"call", "reports", "--url", closed, "--connect-timeout", "1s"}, []string{"connection refused", "is the server at --url"}},
		{"unreachable, credentials in the URL", cleanEnv(), "", []string{"tail", "reports", "--url", strings.Replace(closed, "//", "//alice:s3cret@", 1), "--connect-timeout", "1s"}, []string{"connection refused"}},
		{"no URL", cleanEnv(), "", []string{"call", "reports"}, []string{"UPSTASH_KAFKA_REST_URL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.env, c.stdin, c.args...)
			oneLineErr(t, r, 2, c.contains...)
			assert.Empty(t, r.stdout)
			assert.NotContains(t, r.stderr, "s3cret")
			assert.NotContains(t, r.stderr, "wrong")
		})
	}
	// The right password works, from the variables or the flags.
	start(t, good, "serve", "reports", "--echo")
	r := runCLI(t, good, "", "call", "reports", `"hi"`)
	require.Equal(t, 0, r.code)
	assert.Equal(t, "\"hi\"\n", r.stdout)
	r = runCLI(t, s.env, "", "call", "reports", `"hi"`, "--username", "alice", "--password", "s3cret")
	require.Equal(t, 0, r.code)
}

func TestNotify(t *testing.T) {
	t.Parallel()
	s := startService(t)
	// Each handler writes a file of its own: the server runs handlers
	// concurrently, and two appending to one file in pieces interleave.
	out := t.TempDir()
	start(t, s.env, "serve", "reports", "--exec", `{ cat; echo " $RPC_KEY"; } > `+out+`/"$RPC_ID"`)
	r := runCLI(t, s.env, "", "notify", "reports", `{"evict":7}`, "--key", "users")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "notified reports\n", r.stdout)
	r = runCLI(t, s.env, "", "notify", "reports", `{"evict":8}`, "--json")
	require.Equal(t, 0, r.code)
	assert.Equal(t, map[string]any{"kind": "notify", "ok": true, "topic": "reports"}, jsonLines(t, r.stdout)[0])
	var got []string
	waitFor(t, "both notifications handled", func() bool {
		got = got[:0]
		files, err := os.ReadDir(out)
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(out, f.Name()))
			require.NoError(t, err)
			if !strings.HasSuffix(string(b), "\n") {
				return false // a handler still writing
			}
			got = append(got, strings.TrimSpace(string(b)))
		}
		return len(got) == 2
	})
	assert.ElementsMatch(t, []string{`{"evict":7} users`, `{"evict":8}`}, got)
}

func TestSendWait(t *testing.T) {
	t.Parallel()
	s := startService(t)
	start(t, s.env, "serve", "reports", "--exec", `n=$(cat)
		echo 'progress: {"rows":1,"of":3}' >&2
		sleep 0.2
		echo 'progress: {"rows":3,"of":3}' >&2
		sleep 0.2
		if [ "$n" = 0 ]; then echo 'failed_precondition: nothing to do' >&2; exit 1; fi
		printf '{"file":"report-%s.xlsx"}' "$n"`)

	r := runCLI(t, s.env, "", "send", "reports", "5", "--wait", "--json")
	require.Equal(t, 0, r.code)
	lines := jsonLines(t, r.stdout)
	require.Len(t, lines, 4, "sent, two progress notices, the result")
	id := lines[0]["id"]
	assert.Equal(t, "sent", lines[0]["kind"])
	assert.Equal(t, "kafkarpc-cli.notices", lines[0]["notice_topic"])
	assert.Equal(t, map[string]any{"kind": "progress", "id": id, "progress": map[string]any{"rows": 1.0, "of": 3.0}}, lines[1])
	assert.Equal(t, map[string]any{"kind": "progress", "id": id, "progress": map[string]any{"rows": 3.0, "of": 3.0}}, lines[2])
	assert.Equal(t, "reply", lines[3]["kind"])
	assert.Equal(t, id, lines[3]["id"])
	assert.Equal(t, map[string]any{"file": "report-5.xlsx"}, lines[3]["reply"])

	// Text: progress on stderr as it comes, the result on stdout.
	r = runCLI(t, s.env, "", "send", "reports", "6", "--wait")
	require.Equal(t, 0, r.code)
	assert.Regexp(t, `^sent \S+ \(notices on kafkarpc-cli.notices\)
\{
  "file": "report-6.xlsx"
\}
$`, r.stdout)
	assert.Equal(t, "progress: {\"rows\":1,\"of\":3}\nprogress: {\"rows\":3,\"of\":3}\n", r.stderr)

	// A failed job: its code, exit 1.
	r = runCLI(t, s.env, "", "send", "reports", "0", "--wait")
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "error failed_precondition: nothing to do\n")

	// Without --wait: the id, at once.
	r = runCLI(t, s.env, "", "send", "reports", "7", "--json")
	require.Equal(t, 0, r.code)
	lines = jsonLines(t, r.stdout)
	require.Len(t, lines, 1)
	assert.Equal(t, "sent", lines[0]["kind"])

	// Waiting with nobody serving: deadline_exceeded, exit 1.
	r = runCLI(t, s.env, "", "send", "idle", "1", "--wait", "--timeout", "300ms")
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "error deadline_exceeded")
}

func TestServeStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	s := startService(t)
	p := start(t, s.env, "serve", "reports", "--echo")
	r := runCLI(t, s.env, "", "call", "reports", "1")
	require.Equal(t, 0, r.code)
	stopped := time.Now()
	p.stop(t)
	assert.Equal(t, 0, p.code, "a graceful stop exits 0")
	assert.Less(t, time.Since(stopped), 15*time.Second)

	// Serving a topic whose dedup topic is missing is a clear error.
	r = runCLI(t, s.env, "", "serve", "reports", "--echo", "--group", "elsewhere")
	require.Equal(t, 2, r.code)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.Len(t, lines, 2, "the banner and the error")
	assert.Equal(t, "serving reports as group elsewhere (Ctrl-C to stop)", lines[0])
	assert.Contains(t, lines[1], `dedup topic "elsewhere.handled"`)
	assert.Contains(t, lines[1], "unknown topic")
}
