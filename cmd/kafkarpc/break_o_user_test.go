package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
)

// breakO (a new user's first session): --username and --password each fall
// back to their own variable, as --help says ("default
// $UPSTASH_KAFKA_REST_USERNAME", "default $UPSTASH_KAFKA_REST_PASSWORD").
// Before, giving one flag dropped the other variable: --username with the
// password in UPSTASH_KAFKA_REST_PASSWORD sent an empty password (401), and
// --password with the username in UPSTASH_KAFKA_REST_USERNAME failed with
// "UPSTASH_KAFKA_REST_USERNAME is set but UPSTASH_KAFKA_REST_PASSWORD is not
// (give --url or set UPSTASH_KAFKA_REST_URL)", though both were given and
// the URL was set.
func TestBreakOCredentialFlagFallsBackToItsVariable(t *testing.T) {
	t.Parallel()
	s := startService(t, restserver.WithCredentials("alice", "s3cret"))
	both := append(s.env[:len(s.env):len(s.env)], "UPSTASH_KAFKA_REST_USERNAME=alice", "UPSTASH_KAFKA_REST_PASSWORD=s3cret")
	start(t, both, "serve", "reports", "--echo")

	userOnly := append(s.env[:len(s.env):len(s.env)], "UPSTASH_KAFKA_REST_USERNAME=alice")
	r := runCLI(t, userOnly, "", "call", "reports", `"a"`, "--password", "s3cret")
	require.Equal(t, 0, r.code, "--password with the username in the variable")
	assert.Equal(t, "\"a\"\n", r.stdout)

	passOnly := append(s.env[:len(s.env):len(s.env)], "UPSTASH_KAFKA_REST_PASSWORD=s3cret")
	r = runCLI(t, passOnly, "", "call", "reports", `"b"`, "--username", "alice")
	require.Equal(t, 0, r.code, "--username with the password in the variable")
	assert.Equal(t, "\"b\"\n", r.stdout)

	r = runCLI(t, both, "", "call", "reports", `"c"`, "--username", "alice")
	require.Equal(t, 0, r.code, "--username repeating the variable's")

	// The article's names work the same way.
	legacy := append(s.env[:len(s.env):len(s.env)], "KAFKA_USERNAME=alice")
	r = runCLI(t, legacy, "", "call", "reports", `"d"`, "--password", "s3cret")
	require.Equal(t, 0, r.code, "--password with the username in KAFKA_USERNAME")

	// A password with no username anywhere is still refused, and the hint
	// speaks of the credentials, not of the URL, which is set.
	r = runCLI(t, s.env, "", "call", "reports", `"e"`, "--password", "s3cret")
	oneLineErr(t, r, 2, "username")
	assert.NotContains(t, r.stderr, "give --url")
}

// breakO: the CLI's --brokers help was kafka-rest's ("to proxy ...;
// without it, an embedded broker"), but the CLI has no embedded broker:
// without --brokers it talks to the REST API, and KAFKA_BROKERS counts only
// when no REST URL is named (README, "The command line").
func TestBreakOBrokersHelpIsTheCLIs(t *testing.T) {
	t.Parallel()
	for _, c := range commands {
		h := runCLI(t, cleanEnv(), "", c.name, "--help")
		require.Equal(t, 0, h.code, c.name)
		assert.NotContains(t, h.stdout, "to proxy", c.name)
		assert.NotContains(t, h.stdout, "embedded broker", c.name)
		assert.Contains(t, h.stdout, "-brokers", c.name)
	}
}

// breakO: with no server named, the CLI said "upstash: bad configuration: no
// REST URL: use WithURL or set UPSTASH_KAFKA_REST_URL (give --url or set
// UPSTASH_KAFKA_REST_URL)": the library's Go option, and the hint twice.
func TestBreakONoServerNamedSaysTheFlags(t *testing.T) {
	t.Parallel()
	r := runCLI(t, cleanEnv(), "", "call", "reports", "{}")
	oneLineErr(t, r, 2, "--url", "UPSTASH_KAFKA_REST_URL", "--brokers")
	assert.NotContains(t, r.stderr, "WithURL")
	assert.Equal(t, 1, strings.Count(r.stderr, "UPSTASH_KAFKA_REST_URL"), r.stderr)
}

// breakO: a URL with a path the REST server does not serve (".../v1") is
// said to be one, not an unknown topic (it matched transport.ErrUnknownTopic
// and was told "the topic does not exist on the server").
func TestBreakOWrongURLPathSaysSo(t *testing.T) {
	t.Parallel()
	s := startService(t)
	for _, args := range [][]string{{"call", "reports", "{}"}, {"notify", "reports", "{}"}, {"tail", "reports"}} {
		r := runCLI(t, cleanEnv(), "", append(args, "--url", s.srv.URL+"/v1")...)
		oneLineErr(t, r, 2, "unknown route", "check the path of --url")
		assert.NotContains(t, r.stderr, "does not exist", args[0])
	}
}
