package upstash

import (
	"cmp"
	"errors"
	"fmt"
	"os"
)

// Environment variables read by [FromEnv]. The UPSTASH_ names are those the
// Upstash console showed; the KAFKA_ names are those of the Laravel article's project.
const (
	EnvURL      = "UPSTASH_KAFKA_REST_URL"      // the REST endpoint
	EnvUsername = "UPSTASH_KAFKA_REST_USERNAME" // HTTP Basic username
	EnvPassword = "UPSTASH_KAFKA_REST_PASSWORD" // HTTP Basic password

	EnvLegacyURL      = "KAFKA_URL"      // the REST endpoint, if EnvURL is unset
	EnvLegacyUsername = "KAFKA_USERNAME" // username, if neither EnvUsername nor EnvPassword is set
	EnvLegacyPassword = "KAFKA_PASSWORD" // password, likewise
	EnvLegacyGroup    = "KAFKA_GROUP"    // default consumer group (WithGroup)
	EnvLegacyInstance = "KAFKA_INSTANCE" // default instance id (WithInstance)
)

// FromEnv is [New] configured from the environment, then from opts (which
// override the environment):
//
//   - URL: UPSTASH_KAFKA_REST_URL, else KAFKA_URL.
//   - Credentials: UPSTASH_KAFKA_REST_USERNAME and UPSTASH_KAFKA_REST_PASSWORD,
//     else KAFKA_USERNAME and KAFKA_PASSWORD. A username without a password
//     (or the reverse) is an error, unless opts give the credentials
//     ([WithCredentials]); neither means no auth.
//   - KAFKA_GROUP and KAFKA_INSTANCE, when set, are the defaults for
//     subscriptions that leave Group or Instance empty ([WithGroup],
//     [WithInstance]).
//
// An empty variable counts as unset.
func FromEnv(opts ...Option) (*Transport, error) {
	envOpts, err := envOptions(os.Getenv)
	if err != nil && !(errors.Is(err, errHalfCredentials) && givesCredentials(opts)) {
		return nil, err
	}
	return New(append(envOpts, opts...)...)
}

// errHalfCredentials marks the error of a username without a password (or
// the reverse) in the environment: opts that give the credentials override
// it, as they override the rest of the environment.
var errHalfCredentials = errors.New("half a credentials pair")

// givesCredentials reports whether opts set the credentials.
func givesCredentials(opts []Option) bool {
	var c config
	for _, o := range opts {
		o.apply(&c)
	}
	return c.credsSet
}

func envOptions(getenv func(string) string) ([]Option, error) {
	var opts []Option
	if u := cmp.Or(getenv(EnvURL), getenv(EnvLegacyURL)); u != "" {
		opts = append(opts, WithURL(u))
	}
	user, pass := getenv(EnvUsername), getenv(EnvPassword)
	userVar, passVar := EnvUsername, EnvPassword
	if user == "" && pass == "" {
		user, pass = getenv(EnvLegacyUsername), getenv(EnvLegacyPassword)
		userVar, passVar = EnvLegacyUsername, EnvLegacyPassword
	}
	var half error
	switch {
	case user != "" && pass == "":
		half = fmt.Errorf("%w: %s is set but %s is not%w", ErrConfig, userVar, passVar, noText{errHalfCredentials})
	case user == "" && pass != "":
		half = fmt.Errorf("%w: %s is set but %s is not%w", ErrConfig, passVar, userVar, noText{errHalfCredentials})
	case user != "":
		opts = append(opts, WithCredentials(user, pass))
	}
	if g := getenv(EnvLegacyGroup); g != "" {
		opts = append(opts, WithGroup(g))
	}
	if i := getenv(EnvLegacyInstance); i != "" {
		opts = append(opts, WithInstance(i))
	}
	return opts, half
}

// noText wraps an error for errors.Is without adding to the message.
type noText struct{ err error }

func (n noText) Error() string { return "" }
func (n noText) Unwrap() error { return n.err }
