package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// D15: GET /topics lists only the topics the credentials may produce to
// or consume from, so dlq's check took a TOPIC.dlq out of their reach for
// a missing one: a user who may use "reports" but not "reports.dlq" was
// told "no dead letters: topic reports.dlq does not exist", exit 0, while
// it held dead letters (before the check, the read was refused: 403, exit
// 2). A topic missing from the list is asked about with a fetch, which
// creates nothing: 404 is a missing topic, 403 the refusal it is.
func TestD15DLQOutOfReachIsNotMissing(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{Server: []restserver.Option{ // auto-create on
		restserver.WithCredentials("admin", "adminpw"),
		restserver.WithUsers(
			restserver.User{Name: "bob", Password: "bobpw", Produce: []restserver.TopicPattern{"reports"}, Consume: []restserver.TopicPattern{"reports"}},
			restserver.User{Name: "carol", Password: "carolpw", Produce: []restserver.TopicPattern{"reports"}, Consume: []restserver.TopicPattern{"reports", "reports.*", "jobs*"}},
		),
	}})
	require.NoError(t, srv.Broker.CreateTopic("reports", 1))
	require.NoError(t, srv.Broker.CreateTopic("reports.dlq", 1))
	_, err := srv.Broker.Produce(t.Context(), transport.Message{Topic: "reports.dlq", Value: []byte(`{}`)})
	require.NoError(t, err)
	as := func(user, pass string) []string {
		return cleanEnv("UPSTASH_KAFKA_REST_URL="+srv.URL, "UPSTASH_KAFKA_REST_USERNAME="+user, "UPSTASH_KAFKA_REST_PASSWORD="+pass)
	}

	r := runCLI(t, as("bob", "bobpw"), "", "dlq", "list", "reports", "--idle", "100ms")
	oneLineErr(t, r, 2, "reports.dlq", "403", "these credentials may not use this topic")
	assert.Empty(t, r.stdout)

	// Who may read it reads it; who may read a missing one is told so,
	// and it is not created.
	r = runCLI(t, as("carol", "carolpw"), "", "dlq", "list", "reports", "--idle", "100ms")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "1 dead letters in reports.dlq")
	r = runCLI(t, as("carol", "carolpw"), "", "dlq", "list", "jobs", "--idle", "100ms")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "no dead letters: topic jobs.dlq does not exist\n", r.stdout)
	assert.NotContains(t, srv.Broker.Topics(), "jobs.dlq")
}
