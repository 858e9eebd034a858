package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A15 (a first-time user's review): "kafkarpc dlq list X" on kafka-rest
// with auto-create on created the topic X.dlq (its reader's consume made
// the server create it), and said "no dead letters in X.dlq" as if it had
// been there; without auto-create it failed with exit 2. Reading dead
// letters creates no topic now: a missing X.dlq is said to be missing, for
// list, show and replay, on either server.
func TestA15DLQOfMissingTopicCreatesNothing(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{}) // auto-create on
	require.NoError(t, srv.Broker.CreateTopic("reports", 2))
	require.NoError(t, srv.Broker.CreateTopic("empty.dlq", 1))
	env := cleanEnv("UPSTASH_KAFKA_REST_URL=" + srv.URL)

	r := runCLI(t, env, "", "dlq", "list", "reports", "--idle", "100ms")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "no dead letters: topic reports.dlq does not exist\n", r.stdout)
	r = runCLI(t, env, "", "dlq", "show", "reports")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "no dead letters: topic reports.dlq does not exist\n", r.stdout)
	r = runCLI(t, env, "", "dlq", "replay", "reports", "--all")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "replayed 0 dead letters: topic reports.dlq does not exist\n", r.stdout)
	r = runCLI(t, env, "", "dlq", "list", "reports", "--json")
	require.Equal(t, 0, r.code)
	assert.Empty(t, r.stdout, "no dead letter, no JSON line")
	oneLineErr(t, runCLI(t, env, "", "dlq", "show", "reports", "--id", "x"), 2, "topic reports.dlq does not exist")
	assert.NotContains(t, srv.Broker.Topics(), "reports.dlq", "listing dead letters created their topic")

	// A topic that exists and is empty is read as before.
	r = runCLI(t, env, "", "dlq", "list", "empty", "--idle", "100ms")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "no dead letters in empty.dlq\n", r.stdout)

	// Without auto-create, the same answer (it was exit 2, "unknown topic").
	strict := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithAutoCreate(false)}})
	r = runCLI(t, cleanEnv("UPSTASH_KAFKA_REST_URL="+strict.URL), "", "dlq", "list", "reports", "--idle", "100ms")
	require.Equal(t, 0, r.code)
	assert.Equal(t, "no dead letters: topic reports.dlq does not exist\n", r.stdout)
}

// A15: the check reads the server's topic list with the transport's
// credentials (the flags, each falling back to its variable, else the
// variables, else the URL's user info), and says why when it cannot.
func TestA15DLQCheckUsesTheCredentials(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{Server: []restserver.Option{restserver.WithCredentials("alice", "s3cret")}})
	require.NoError(t, srv.Broker.CreateTopic("reports.dlq", 1))
	for name, env := range map[string][]string{
		"variables":    cleanEnv("UPSTASH_KAFKA_REST_URL="+srv.URL, "UPSTASH_KAFKA_REST_USERNAME=alice", "UPSTASH_KAFKA_REST_PASSWORD=s3cret"),
		"article's":    cleanEnv("KAFKA_URL="+srv.URL, "KAFKA_USERNAME=alice", "KAFKA_PASSWORD=s3cret"),
		"URL userinfo": cleanEnv("UPSTASH_KAFKA_REST_URL=" + srv.URL[:len("http://")] + "alice:s3cret@" + srv.URL[len("http://"):]),
	} {
		r := runCLI(t, env, "", "dlq", "list", "reports", "--idle", "100ms")
		require.Equal(t, 0, r.code, name)
		assert.Equal(t, "no dead letters in reports.dlq\n", r.stdout, name)
	}
	r := runCLI(t, cleanEnv("UPSTASH_KAFKA_REST_URL="+srv.URL, "UPSTASH_KAFKA_REST_USERNAME=alice"), "", "dlq", "list", "reports", "--password", "s3cret", "--idle", "100ms")
	require.Equal(t, 0, r.code, "--password with the username in the variable")
	r = runCLI(t, cleanEnv("UPSTASH_KAFKA_REST_URL="+srv.URL, "UPSTASH_KAFKA_REST_USERNAME=alice", "UPSTASH_KAFKA_REST_PASSWORD=wrong"), "", "dlq", "list", "reports", "--idle", "100ms")
	oneLineErr(t, r, 2, "401", "check --username/--password")
	r = runCLI(t, cleanEnv(), "", "dlq", "list", "reports", "--url", srv.URL+"/v1", "--username", "alice", "--password", "s3cret")
	oneLineErr(t, r, 2, "unknown route", "check the path of --url")
}
