package kafka

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f Flags
	f.Register(fs)
	require.NoError(t, fs.Parse(args))
	return &f
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	env := map[string]string{EnvBrokers: "env:1", EnvSASLMechanism: "PLAIN", EnvSASLUsername: "envuser", EnvSASLPassword: "envpass"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	f := parseFlags(t, "--brokers", "a:1, b:2", "--kafka-sasl-username", "flaguser")
	assert.True(t, f.Wanted())
	c, err := f.config(lookup)
	require.NoError(t, err)
	assert.Equal(t, []string{"a:1", "b:2"}, c.Brokers)
	assert.Equal(t, "flaguser", c.SASLUsername)
	assert.Equal(t, "envpass", c.SASLPassword, "an unset flag falls back to the environment")
	assert.NotContains(t, c.String(), "envpass")

	f = parseFlags(t)
	assert.False(t, f.Wanted(), "no flag: the embedded broker")
}

func TestFlagsBadInput(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, args := range [][]string{
		{"--brokers", "nohostport"},
		{"--brokers", "a:1", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-username", "u"},
		{"--brokers", "a:1", "--kafka-sasl-username", "u"},
		{"--brokers", "a:1", "--kafka-tls-cert-file", "x.pem"},
		{"--kafka-tls"},
	} {
		_, err := parseFlags(t, args...).config(none)
		assert.Error(t, err, "%q", args)
	}
}
