package upstash

import (
	"fmt"
	"os"
)

// Environment variables read by [FromEnv]. The UPSTASH_ names are those the
// Upstash console showed; the KAFKA_ names are the seed project's.
const (
	EnvURL      = "UPSTASH_KAFKA_REST_URL"
	EnvUsername = "UPSTASH_KAFKA_REST_USERNAME"
	EnvPassword = "UPSTASH_KAFKA_REST_PASSWORD"

	EnvLegacyURL      = "KAFKA_URL"
	EnvLegacyUsername = "KAFKA_USERNAME"
	EnvLegacyPassword = "KAFKA_PASSWORD"
	EnvLegacyGroup    = "KAFKA_GROUP"
	EnvLegacyInstance = "KAFKA_INSTANCE"
)

// FromEnv is [New] configured from the environment, then from opts (which
// override the environment):
//
//   - URL: UPSTASH_KAFKA_REST_URL, else KAFKA_URL.
//   - Credentials: UPSTASH_KAFKA_REST_USERNAME and UPSTASH_KAFKA_REST_PASSWORD,
//     else KAFKA_USERNAME and KAFKA_PASSWORD. A username without a password
//     (or the reverse) is an error; neither means no auth.
//   - KAFKA_GROUP and KAFKA_INSTANCE, when set, are the defaults for
//     subscriptions that leave Group or Instance empty ([WithGroup],
//     [WithInstance]).
//
// An empty variable counts as unset.
func FromEnv(opts ...Option) (*Transport, error) {
	envOpts, err := envOptions(os.Getenv)
	if err != nil {
		return nil, err
	}
	return New(append(envOpts, opts...)...)
}

func envOptions(getenv func(string) string) ([]Option, error) {
	first := func(names ...string) (string, string) {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return n, v
			}
		}
		return "", ""
	}
	var opts []Option
	if _, u := first(EnvURL, EnvLegacyURL); u != "" {
		opts = append(opts, WithURL(u))
	}
	user, pass := getenv(EnvUsername), getenv(EnvPassword)
	userVar, passVar := EnvUsername, EnvPassword
	if user == "" && pass == "" {
		user, pass = getenv(EnvLegacyUsername), getenv(EnvLegacyPassword)
		userVar, passVar = EnvLegacyUsername, EnvLegacyPassword
	}
	switch {
	case user != "" && pass == "":
		return nil, fmt.Errorf("%w: %s is set but %s is not", ErrConfig, userVar, passVar)
	case user == "" && pass != "":
		return nil, fmt.Errorf("%w: %s is set but %s is not", ErrConfig, passVar, userVar)
	case user != "":
		opts = append(opts, WithCredentials(user, pass))
	}
	if g := getenv(EnvLegacyGroup); g != "" {
		opts = append(opts, WithGroup(g))
	}
	if i := getenv(EnvLegacyInstance); i != "" {
		opts = append(opts, WithInstance(i))
	}
	return opts, nil
}
