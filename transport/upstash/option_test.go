package upstash

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseBaseURL(t *testing.T) {
	tests := []struct {
		in       string
		want     string // base URL, "" when an error is expected
		user     string
		pass     string
		errMatch string
	}{
		{in: "https://tops-stingray-7863-eu1-rest-kafka.upstash.io", want: "https://tops-stingray-7863-eu1-rest-kafka.upstash.io"},
		{in: "https://tops-stingray-7863-eu1-rest-kafka.upstash.io/", want: "https://tops-stingray-7863-eu1-rest-kafka.upstash.io"},
		{in: "sharing-mastodon-12819-eu1-rest-kafka.upstashdev.com", want: "https://sharing-mastodon-12819-eu1-rest-kafka.upstashdev.com"},
		{in: "  localhost:8080  ", want: "https://localhost:8080"},
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{in: "http://127.0.0.1:8080/kafka/", want: "http://127.0.0.1:8080/kafka"},
		{in: "http://[::1]:9092/", want: "http://[::1]:9092"},
		{in: "HTTP://Example.com", want: "http://Example.com"},
		{in: "https://alice:s3cret@example.com/", want: "https://example.com", user: "alice", pass: "s3cret"},
		{in: "", errMatch: "no REST URL"},
		{in: "ftp://example.com", errMatch: "scheme must be http or https"},
		{in: "https://", errMatch: "no host"},
		{in: "https://:8080", errMatch: "no host"},
		{in: "https://example.com:99999", errMatch: "bad port"},
		{in: "https://example.com:0", errMatch: "bad port"},
		{in: "https://example.com/?x=1", errMatch: "query or fragment"},
		{in: "https://example.com/#frag", errMatch: "query or fragment"},
		{in: "https://exa mple.com", errMatch: "REST URL"},
		{in: "https://bob:pw@exa mple.com", errMatch: "REST URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, user, err := parseBaseURL(tt.in)
			if tt.errMatch != "" {
				require.ErrorIs(t, err, ErrConfig)
				assert.ErrorContains(t, err, tt.errMatch)
				assert.NotContains(t, err.Error(), "pw", "a password must not appear in errors")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, u.String())
			assert.Nil(t, u.User, "user info must be split off the base URL")
			if tt.user != "" {
				require.NotNil(t, user)
				assert.Equal(t, tt.user, user.Username())
				p, _ := user.Password()
				assert.Equal(t, tt.pass, p)
			} else {
				assert.Nil(t, user)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name     string
		opts     []Option
		errMatch string
	}{
		{"NoURL", nil, "no REST URL"},
		{"BadURL", []Option{WithURL("gopher://x")}, "scheme"},
		{"PasswordWithoutUser", []Option{WithURL("http://x"), WithCredentials("", "pw")}, "password given without a username"},
		{"NilLogger", []Option{WithURL("http://x"), WithLogger(nil)}, "nil logger"},
		{"ZeroMaxBatch", []Option{WithURL("http://x"), WithMaxBatch(0)}, "max batch 0"},
		{"ZeroMaxBatchBytes", []Option{WithURL("http://x"), WithMaxBatchBytes(0)}, "max batch bytes"},
		{"NegativeMaxCarriedAnswer", []Option{WithURL("http://x"), WithMaxCarriedAnswer(-1)}, "max carried answer"},
		{"ZeroPollWindow", []Option{WithURL("http://x"), WithPollWindow(0)}, "poll window"},
		{"HugePollWindow", []Option{WithURL("http://x"), WithPollWindow(time.Minute)}, "poll window"},
		{"ZeroRequestTimeout", []Option{WithURL("http://x"), WithRequestTimeout(0)}, "request timeout"},
		{"ZeroCloseTimeout", []Option{WithURL("http://x"), WithCloseTimeout(0)}, "close timeout"},
		{"NegativeBackoff", []Option{WithURL("http://x"), WithBackoff(Backoff{MaxElapsed: -time.Second})}, "backoff"},
		{"SmallMultiplier", []Option{WithURL("http://x"), WithBackoff(Backoff{Multiplier: 0.5})}, "multiplier"},
		{"MaxBelowInitial", []Option{WithURL("http://x"), WithBackoff(Backoff{Initial: time.Second, Max: time.Millisecond})}, "below initial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(tt.opts...)
			require.ErrorIs(t, err, ErrConfig)
			assert.ErrorContains(t, err, tt.errMatch)
			assert.Nil(t, tr)
		})
	}

	t.Run("Defaults", func(t *testing.T) {
		tr, err := New(WithURL("example.com"))
		require.NoError(t, err)
		defer tr.Close()
		assert.Equal(t, "https://example.com", tr.URL())
		assert.Equal(t, DefaultMaxBatch, tr.cfg.maxBatch)
		assert.Equal(t, DefaultPollWindow, tr.cfg.pollWindow)
		assert.Equal(t, Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2, MaxElapsed: 30 * time.Second}, tr.cfg.backoff)
		assert.False(t, tr.cfg.credsSet)
	})
	t.Run("CredentialsFromURL", func(t *testing.T) {
		tr, err := New(WithURL("https://u:p@example.com"))
		require.NoError(t, err)
		defer tr.Close()
		assert.Equal(t, "https://example.com", tr.URL())
		assert.True(t, tr.cfg.credsSet)
		assert.Equal(t, "u", tr.cfg.user)
		assert.Equal(t, "p", tr.cfg.pass)
	})
	t.Run("ExplicitCredentialsWin", func(t *testing.T) {
		tr, err := New(WithURL("https://u:p@example.com"), WithCredentials("alice", "pw"))
		require.NoError(t, err)
		defer tr.Close()
		assert.Equal(t, "alice", tr.cfg.user)
	})
}

func TestEnvOptions(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantURL  string
		wantUser string
		wantPass string
		group    string
		instance string
		errMatch string
	}{
		{
			name: "Upstash",
			env: map[string]string{
				EnvURL: "https://x-rest-kafka.upstash.io", EnvUsername: "u", EnvPassword: "p",
				EnvLegacyURL: "http://ignored", EnvLegacyUsername: "ignored", EnvLegacyPassword: "ignored",
			},
			wantURL: "https://x-rest-kafka.upstash.io", wantUser: "u", wantPass: "p",
		},
		{
			name: "SeedNames",
			env: map[string]string{
				EnvLegacyURL: "x-rest-kafka.upstash.io", EnvLegacyUsername: "lu", EnvLegacyPassword: "lp",
				EnvLegacyGroup: "reports", EnvLegacyInstance: "server-two-1",
			},
			wantURL: "https://x-rest-kafka.upstash.io", wantUser: "lu", wantPass: "lp",
			group: "reports", instance: "server-two-1",
		},
		{
			name:    "NoCredentials",
			env:     map[string]string{EnvURL: "http://127.0.0.1:8080"},
			wantURL: "http://127.0.0.1:8080",
		},
		{
			name:     "UserWithoutPassword",
			env:      map[string]string{EnvURL: "http://h", EnvUsername: "u"},
			errMatch: "UPSTASH_KAFKA_REST_USERNAME is set but UPSTASH_KAFKA_REST_PASSWORD is not",
		},
		{
			name:     "SeedPasswordWithoutUser",
			env:      map[string]string{EnvURL: "http://h", EnvLegacyPassword: "p"},
			errMatch: "KAFKA_PASSWORD is set but KAFKA_USERNAME is not",
		},
		{
			name:     "NoURL",
			env:      map[string]string{EnvUsername: "u", EnvPassword: "p"},
			errMatch: "no REST URL",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := envOptions(func(k string) string { return tt.env[k] })
			var tr *Transport
			if err == nil {
				tr, err = New(opts...)
			}
			if tt.errMatch != "" {
				require.ErrorIs(t, err, ErrConfig)
				assert.ErrorContains(t, err, tt.errMatch)
				return
			}
			require.NoError(t, err)
			defer tr.Close()
			assert.Equal(t, tt.wantURL, tr.URL())
			assert.Equal(t, tt.wantUser, tr.cfg.user)
			assert.Equal(t, tt.wantPass, tr.cfg.pass)
			assert.Equal(t, tt.group, tr.cfg.group)
			assert.Equal(t, tt.instance, tr.cfg.instance)
		})
	}
}

func TestFromEnv(t *testing.T) {
	for _, k := range []string{EnvURL, EnvUsername, EnvPassword, EnvLegacyURL, EnvLegacyUsername, EnvLegacyPassword, EnvLegacyGroup, EnvLegacyInstance} {
		t.Setenv(k, "")
	}
	t.Setenv(EnvLegacyURL, "http://127.0.0.1:1/")
	t.Setenv(EnvLegacyGroup, "from-env")
	tr, err := FromEnv(WithGroup("from-option"))
	require.NoError(t, err)
	defer tr.Close()
	assert.Equal(t, "http://127.0.0.1:1", tr.URL())
	assert.Equal(t, "from-option", tr.cfg.group, "options override the environment")
}
