package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

var reportReadyLine = regexp.MustCompile(`(?m)^report ready: (.+\.xlsx)$`)

// checkRunOutput checks what the one-command run printed: progress lines,
// then "report ready: PATH" naming an .xlsx that exists in dir.
func checkRunOutput(t *testing.T, out, dir string) {
	t.Helper()
	m := reportReadyLine.FindStringSubmatch(out)
	require.NotNil(t, m, "no 'report ready:' line in:\n%s", out)
	path := m[1]
	assert.FileExists(t, path)
	assert.Equal(t, dir, filepath.Dir(path))
	progress := strings.Index(out, "progress: querying sales")
	require.GreaterOrEqual(t, progress, 0, "progress lines in:\n%s", out)
	assert.Contains(t, out, "progress: writing xlsx")
	assert.Less(t, progress, strings.Index(out, "report ready:"), "progress comes first")
}

// go run ./examples/reports: the whole scenario over the embedded REST
// server, each side on its own REST client.
func TestRunOneCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr syncBuffer
	err := run(ctxT(t, 50*time.Second), []string{"-dir", dir}, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	checkRunOutput(t, stdout.String(), dir)
	assert.NotContains(t, stderr.String(), "level=ERROR")
	assert.Contains(t, stderr.String(), "embedded Kafka REST server")
}

// -serve keeps the web app up and prints its URL until the context ends.
func TestRunServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-serve", "-addr", "127.0.0.1:0", "-dir", dir}, &stdout, &stderr) }()

	url := waitForURL(t, &stdout, done)
	req, _, _ := lastMonth()
	var out syncBuffer
	ready, err := requestReport(ctxT(t, 30*time.Second), url, dir, req, &out)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	checkRunOutput(t, out.String(), dir)
	assert.Positive(t, ready.Rows)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

// waitForURL waits for the "web app: URL" line.
func waitForURL(t *testing.T, stdout *syncBuffer, done <-chan error) string {
	t.Helper()
	webLine := regexp.MustCompile(`(?m)^web app: (http://\S+)$`)
	var url string
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			require.FailNow(t, "run returned early", "%v", err)
		default:
		}
		if m := webLine.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
		return url != ""
	}, 20*time.Second, 5*time.Millisecond, "no 'web app:' line")
	return url
}

const secretPassword = "s3cret-Pa55word"

// The pair as separate roles (here goroutines, in the README processes)
// against one REST server named by the environment, with credentials.
func TestRunRolesFromEnv(t *testing.T) {
	rest := resttest.Start(t, resttest.Config{
		Broker: []memory.Option{memory.WithTopic(reportsTopic, 3)},
		Server: []restserver.Option{restserver.WithCredentials("reports-user", secretPassword)},
	})
	t.Setenv(upstash.EnvURL, rest.URL)
	t.Setenv(upstash.EnvUsername, "reports-user")
	t.Setenv(upstash.EnvPassword, secretPassword)
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var workerOut, workerErr, webOut, webErr syncBuffer
	workerDone := make(chan error, 1)
	go func() { workerDone <- run(ctx, []string{"-role", "worker", "-dir", dir}, &workerOut, &workerErr) }()
	webDone := make(chan error, 1)
	go func() {
		webDone <- run(ctx, []string{"-role", "web", "-addr", "127.0.0.1:0", "-dir", dir}, &webOut, &webErr)
	}()
	url := waitForURL(t, &webOut, webDone)

	req, _, _ := lastMonth()
	var out syncBuffer
	_, err := requestReport(ctxT(t, 30*time.Second), url, dir, req, &out)
	require.NoError(t, err, "worker:\n%s\nweb:\n%s", workerErr.String(), webErr.String())
	checkRunOutput(t, out.String(), dir)
	for _, logs := range []string{workerErr.String(), webErr.String()} {
		assert.Contains(t, logs, "Kafka REST endpoint")
		assert.NotContains(t, logs, secretPassword, "no credentials in the logs")
	}

	cancel()
	for name, done := range map[string]chan error{"worker": workerDone, "web": webDone} {
		select {
		case err := <-done:
			assert.NoError(t, err, name)
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not return after its context ended", name)
		}
	}
}

func TestRunBadArguments(t *testing.T) {
	for _, v := range []string{upstash.EnvURL, upstash.EnvUsername, upstash.EnvPassword, upstash.EnvLegacyURL, upstash.EnvLegacyUsername, upstash.EnvLegacyPassword} {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-role", "boss"}, `-role "boss": want all, worker or web`},
		{[]string{"extra"}, `unexpected arguments: ["extra"]`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-role", "worker", "-dir", dir}, upstash.EnvURL},
		{[]string{"-role", "web", "-dir", dir}, upstash.EnvURL},
	}
	for _, c := range cases {
		var stdout, stderr syncBuffer
		err := run(ctxT(t, 10*time.Second), c.args, &stdout, &stderr)
		require.Error(t, err, "%v", c.args)
		assert.Contains(t, err.Error(), c.want, "%v", c.args)
	}
	var stdout, stderr syncBuffer
	require.NoError(t, run(context.Background(), []string{"-h"}, &stdout, &stderr), "-h is not an error")
	assert.Contains(t, stderr.String(), "usage: reports")
}

// A worker that cannot reach its REST server makes the one-command run fail
// at once, not wait for its timeout. (The embedded server answers; here the
// worker's own transport is pointed at a closed port.)
func TestRunPairWorkerFailureEndsRun(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	bad, err := upstash.New(upstash.WithURL(dead), upstash.WithBackoff(upstash.Backoff{MaxRetries: 1, MaxElapsed: time.Second}))
	require.NoError(t, err)
	t.Cleanup(func() { bad.Close() })
	good, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { good.Close() })

	log, _ := testLogger(t)
	cfg, err := parseFlags([]string{"-dir", t.TempDir(), "-timeout", "40s"}, os.Stderr)
	require.NoError(t, err)
	var out syncBuffer
	start := time.Now()
	err = runPair(ctxT(t, 45*time.Second), cfg, log, &out, bad, good)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "worker:")
	assert.Less(t, time.Since(start), 20*time.Second)
	assert.NotContains(t, out.String(), "report ready:")
}

// The endpoint is logged without the credentials a URL may carry.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"https://u:s3cret@example.com:8443/prefix"}, "https://example.com:8443/prefix"},
		{[]string{"", "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"},
		{[]string{"::not a url s3cret"}, "(unparsable URL)"},
		{[]string{"", ""}, ""},
	}
	for _, c := range cases {
		got := redactURL(c.in...)
		assert.Equal(t, c.want, got, "%q", c.in)
		assert.NotContains(t, got, "s3cret")
	}
}
