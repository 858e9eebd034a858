package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigFromEnv(t *testing.T) {
	c, err := configFromLookup(envOf(map[string]string{
		EnvBrokers:       " a:9092, b:9093 ,",
		EnvSASLMechanism: "SCRAM-SHA-512",
		EnvSASLUsername:  "svc",
		EnvSASLPassword:  "s3cret pass",
	}))
	require.NoError(t, err)
	require.Equal(t, []string{"a:9092", "b:9093"}, c.Brokers)
	require.Equal(t, "s3cret pass", c.SASLPassword)
	require.Nil(t, c.TLS)
	require.NotContains(t, c.String(), "s3cret")
	require.Contains(t, c.String(), "password=<redacted>")

	c, err = configFromLookup(envOf(map[string]string{EnvBrokers: "a:1", EnvTLS: "true"}))
	require.NoError(t, err)
	require.NotNil(t, c.TLS)
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no brokers":       {map[string]string{}, "KAFKA_BROKERS is not set"},
		"no port":          {map[string]string{EnvBrokers: "localhost"}, `broker "localhost": want host:port`},
		"bad port":         {map[string]string{EnvBrokers: "h:99999"}, "bad port"},
		"bad mechanism":    {map[string]string{EnvBrokers: "h:1", EnvSASLMechanism: "GSSAPI", EnvSASLUsername: "u"}, `SASL mechanism "GSSAPI"`},
		"no user":          {map[string]string{EnvBrokers: "h:1", EnvSASLMechanism: "PLAIN"}, "needs a username"},
		"creds, no mech":   {map[string]string{EnvBrokers: "h:1", EnvSASLUsername: "u"}, "without a SASL mechanism"},
		"bad tls bool":     {map[string]string{EnvBrokers: "h:1", EnvTLS: "maybe"}, "want true or false"},
		"missing CA":       {map[string]string{EnvBrokers: "h:1", EnvTLSCAFile: "/nonexistent/ca.pem"}, "TLS CA file"},
		"cert without key": {map[string]string{EnvBrokers: "h:1", EnvTLSCertFile: "/x.pem"}, "given together"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := configFromLookup(envOf(tc.env))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestConfigSASLAgainstKfake connects through a real SASL handshake: the
// right SCRAM password works, a wrong one fails with an authentication error
// that does not carry the password.
func TestConfigSASLAgainstKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "admin", "right-pw"), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	defer c.Close()

	ping := func(pw string) error {
		cfg := Config{Brokers: c.ListenAddrs(), SASLMechanism: SASLScramSHA256, SASLUsername: "admin", SASLPassword: pw}
		opts, err := cfg.ClientOpts()
		require.NoError(t, err)
		cl, err := kgo.NewClient(opts...)
		require.NoError(t, err)
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	}
	require.NoError(t, ping("right-pw"))
	err = ping("wrong-pw-123")
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "wrong-pw-123"), err.Error())
}
