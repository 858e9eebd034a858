package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
)

func TestMain(m *testing.M) {
	if report := os.Getenv(abuseChildEnv); report != "" {
		// A child of TestAbuseBinary: serve as kafka-rest, watched.
		os.Exit(abuseChild(report))
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer = testutil.SyncBuffer

var urlRE = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)

// start runs run(args) and returns the URL it logged, its log and a stop
// function that cancels it and returns run's error.
func start(t *testing.T, args ...string) (url string, logs *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	stopped := false
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("run did not return after cancel")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("run returned early: %v\nlog:\n%s", err, logs.String())
		default:
		}
		return urlRE.MatchString(logs.String())
	}, 10*time.Second, 5*time.Millisecond, "the URL is logged")
	return urlRE.FindStringSubmatch(logs.String())[1], logs, stop
}

func get(t *testing.T, method, url, user, pass, body string) (int, string) {
	t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestRunServesAndStops(t *testing.T) {
	const pass = "s3cr3t-Pa55word"
	url, logs, stop := start(t, "--addr", "127.0.0.1:0", "--topics", "reports:3, events", "--partitions", "2",
		"--username", "admin", "--password", pass, "--log-level", "debug")

	status, body := get(t, "GET", url+"/topics", "admin", pass, "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"reports":3,"events":2}`, body)

	status, body = get(t, "GET", url+"/topics", "", "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.JSONEq(t, `{"error":"missing credentials: use HTTP Basic authentication","status":401}`, body)

	// Auto-create is on by default; the webhook's query credentials work.
	status, body = get(t, "POST", url+"/webhook?topic=new-topic&user=admin&pass="+pass, "", "", "payload")
	assert.Equal(t, http.StatusOK, status, body)
	status, body = get(t, "GET", url+"/topics", "admin", pass, "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"reports":3,"events":2,"new-topic":2}`, body)

	require.NoError(t, stop(), "clean exit on cancel")
	out := logs.String()
	assert.Contains(t, out, "kafka-rest: stopped")
	assert.Contains(t, out, "/webhook", "debug request log present")
	assert.NotContains(t, out, pass, "the password is never logged")
}

func TestRunCredentialsFromEnvAndNoAutoCreate(t *testing.T) {
	t.Setenv("KAFKA_REST_USERNAME", "envuser")
	t.Setenv("KAFKA_REST_PASSWORD", "envpass-9876")
	url, logs, stop := start(t, "--addr", "127.0.0.1:0", "--auto-create=false", "--topics", "t")

	status, _ := get(t, "GET", url+"/topics", "envuser", "envpass-9876", "")
	assert.Equal(t, http.StatusOK, status)
	status, body := get(t, "POST", url+"/produce/unknown", "envuser", "envpass-9876", `{"value":"x"}`)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body, `"status":404`)

	require.NoError(t, stop())
	assert.NotContains(t, logs.String(), "envpass-9876")
}

func TestRunRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "not defined"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
		{"username without password", []string{"--username", "u"}, "both"},
		{"bad topic count", []string{"--topics", "a:x"}, "partition count"},
		{"zero topic count", []string{"--topics", "a:0"}, "partition count"},
		{"empty topic name", []string{"--topics", ":3"}, "empty topic name"},
		{"invalid topic name", []string{"--topics", "bad/name"}, "--topics"},
		{"bad partitions", []string{"--partitions", "0"}, "--partitions"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"bad max message", []string{"--max-message-bytes", "0"}, "--max-message-bytes"},
		{"address in use or bad", []string{"--addr", "127.0.0.1:99999"}, "listen"},
		{"fsync without data dir", []string{"--fsync", "never"}, "--fsync applies to --data-dir"},
		{"bad fsync", []string{"--data-dir", t.TempDir(), "--fsync", "interval=0s"}, "--fsync"},
		{"data dir is a file", []string{"--data-dir", "main.go"}, "--data-dir main.go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr syncBuffer
			err := run(context.Background(), tt.args, io.Discard, &stderr)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, &stdout, io.Discard))
	assert.Contains(t, stdout.String(), "-topics")
	assert.Contains(t, stdout.String(), "KAFKA_REST_PASSWORD")
}

func TestParseTopics(t *testing.T) {
	got, err := parseTopics(" a:3,b ,, c:1 ", 2)
	require.NoError(t, err)
	assert.Equal(t, []topicSpec{{"a", 3}, {"b", 2}, {"c", 1}}, got)
	got, err = parseTopics("", 1)
	require.NoError(t, err)
	assert.Empty(t, got)
}

// TestRunLimitFlags: the limit flags reach the server and the broker, and
// --help lists each with its default.
func TestRunLimitFlags(t *testing.T) {
	url, _, stop := start(t, "--addr", "127.0.0.1:0", "--retention-records", "2", "--max-topics", "2",
		"--max-name-length", "5", "--fetch-max-partitions", "1")
	defer func() { require.NoError(t, stop()) }()

	status, body := get(t, "POST", url+"/produce/a", "", "", `[{"value":"1"},{"value":"2"},{"value":"3"}]`)
	require.Equal(t, http.StatusOK, status, body)
	status, body = get(t, "POST", url+"/fetch", "", "", `{"topic":"a","partition":0,"offset":0}`)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, 2, strings.Count(body, `"offset"`), "--retention-records 2: %s", body)
	status, _ = get(t, "POST", url+"/fetch", "", "", `{"topicPartitionOffsets":[{"topic":"a","partition":0},{"topic":"b"}]}`)
	assert.Equal(t, http.StatusBadRequest, status, "--fetch-max-partitions 1")
	status, _ = get(t, "POST", url+"/produce", "", "", `[{"topic":"b","value":"1"},{"topic":"c","value":"1"}]`)
	assert.Equal(t, http.StatusBadRequest, status, "--max-topics 2")
	status, _ = get(t, "POST", url+"/consume/group6/i", "", "", `{"topic":"a","timeout":0}`)
	assert.Equal(t, http.StatusBadRequest, status, "--max-name-length 5")

	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, &stdout, io.Discard))
	for _, f := range []string{"fetch-max-bytes int", "(default 16777216)", "max-partition-fetch-bytes", "fetch-max-partitions",
		"max-name-length", "max-topics", "max-total-partitions", "offsets-retention", "retention-records",
		"retention-bytes", "retention-age", "max-connections", "max-instances", "idle-timeout", "failed-login-limit"} {
		assert.Contains(t, stdout.String(), f)
	}
}
