package upstash

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// breakO (a new user's first session): a REST URL with a wrong path prefix
// (".../v1") makes every request a 404 "unknown route GET /v1/topics".
// Error.Unwrap's doc says a 404 for an unknown route matches no sentinel,
// but the route's message names "/topics" or "/produce", and it matched
// transport.ErrUnknownTopic: rpc turned it into not_found and the CLI told
// the user "the topic does not exist on the server" for a topic that does.
func TestBreakOUnknownRouteIsNotAnUnknownTopic(t *testing.T) {
	srv := resttest.Start(t, resttest.Config{})
	require.NoError(t, srv.Broker.CreateTopic("orders", 1))
	tr, err := New(WithURL(srv.URL+"/v1"), WithoutRetry())
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	_, err = tr.Produce(ctx, transport.Message{Topic: "orders", Value: []byte(`{}`)})
	requireUnknownRoute(t, err, "produce")
	tl, err := tr.Tail(ctx, "orders")
	if err == nil {
		tl.Close()
	}
	requireUnknownRoute(t, err, "tail")
	_, err = tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"orders"}})
	requireUnknownRoute(t, err, "subscribe")
}

func requireUnknownRoute(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	var he *Error
	require.True(t, errors.As(err, &he), "%s: %v", what, err)
	assert.Equal(t, http.StatusNotFound, he.Status, what)
	assert.Contains(t, err.Error(), "unknown route", what)
	assert.NotErrorIs(t, err, transport.ErrUnknownTopic, "%s: a wrong URL path is not a missing topic: %v", what, err)
	// Nor is it worth another attempt: rpc.Client retries a produce's
	// error until the call's deadline unless it is one of the permanent
	// sentinels (a Notify through a wrong path took its whole 30 s).
	assert.ErrorIs(t, err, transport.ErrInvalid, "%s: a wrong URL path is a permanent error", what)
}

// breakO: FromEnv's options override the environment, credentials too: a
// username in UPSTASH_KAFKA_REST_USERNAME without its password is no error
// when WithCredentials gives the pair (kafkarpc --password did just that and
// was refused with "UPSTASH_KAFKA_REST_USERNAME is set but
// UPSTASH_KAFKA_REST_PASSWORD is not").
func TestBreakOFromEnvCredentialsOptionOverridesHalfPair(t *testing.T) {
	srv := resttest.Start(t, resttest.Config{Server: []restserver.Option{restserver.WithCredentials("alice", "s3cret")}})
	require.NoError(t, srv.Broker.CreateTopic("orders", 1))
	t.Setenv(EnvURL, srv.URL)
	t.Setenv(EnvUsername, "alice")
	t.Setenv(EnvPassword, "")

	_, err := FromEnv()
	require.ErrorIs(t, err, ErrConfig, "half a pair, nothing to override it")
	assert.ErrorContains(t, err, "UPSTASH_KAFKA_REST_USERNAME is set but UPSTASH_KAFKA_REST_PASSWORD is not")
	assert.NotContains(t, err.Error(), "pair", "the marker adds nothing to the message")

	tr, err := FromEnv(WithCredentials("alice", "s3cret"))
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = tr.Produce(ctx, transport.Message{Topic: "orders", Value: []byte(`{}`)})
	require.NoError(t, err)
}
