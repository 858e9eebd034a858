package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestOverKafka drives the binary against Kafka directly (kfake, through
// the Kafka protocol): serve and call with --brokers, tail and call with
// KAFKA_BROKERS from the environment, and a clear error for an unknown
// topic and for unreachable brokers.
func TestOverKafka(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, defaultTopics...))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	brokers := strings.Join(c.ListenAddrs(), ",")
	env := cleanEnv()

	start(t, env, "serve", "reports", "--echo", "--brokers", brokers)
	r := runCLI(t, env, "", "call", "reports", `{"n":7}`, "--brokers", brokers, "--timeout", "30s", "--json")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	lines := jsonLines(t, r.stdout)
	require.Len(t, lines, 1)
	assert.Equal(t, true, lines[0]["ok"])
	assert.Equal(t, map[string]any{"n": 7.0}, lines[0]["reply"])

	// KAFKA_BROKERS alone selects Kafka when no REST endpoint is named.
	envK := cleanEnv("KAFKA_BROKERS=" + brokers)
	r = runCLI(t, envK, "", "call", "reports", `"hi"`, "--timeout", "30s")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, "\"hi\"\n", r.stdout)

	// A topic the cluster does not have: a fast, clear transport error.
	r = runCLI(t, envK, "", "call", "nosuchtopic", "1", "--timeout", "30s")
	oneLineErr(t, r, 2, "nosuchtopic")

	// Brokers nobody listens on: exit 2 within the connect timeout.
	r = runCLI(t, cleanEnv(), "", "call", "reports", "1", "--brokers", "127.0.0.1:1", "--connect-timeout", "2s")
	assert.Equal(t, 2, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
}
