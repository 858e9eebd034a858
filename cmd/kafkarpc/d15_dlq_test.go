package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
)

// D15: dlq's topic check (GET /topics) took the URL's user info with
// url.Parse of the URL as given, while the transport takes the URL as
// upstash.WithURL does: trimmed of spaces, and https:// for a bare host.
// A URL with credentials in it and a space or newline around it (pasted
// into the variable) worked for every other command, and dlq failed with
// 401 (its check went without credentials); a bare host with user info
// ("alice:pw@host:port", which the transport reads as https://...) was
// parsed as scheme "alice", likewise without credentials. The check now
// asks the transport (upstash.Transport.TopicExists), which reads the URL
// and credentials as it does for every other request.
func TestD15DLQCheckTakesTheURLAsTheTransportDoes(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{Server: []restserver.Option{restserver.WithCredentials("alice", "s3cret")}})
	require.NoError(t, srv.Broker.CreateTopic("reports.dlq", 1))
	withCreds := srv.URL[:len("http://")] + "alice:s3cret@" + srv.URL[len("http://"):]
	for _, u := range []string{" " + withCreds, withCreds + "\n", "\t" + withCreds + " "} {
		r := runCLI(t, cleanEnv("UPSTASH_KAFKA_REST_URL="+u), "", "dlq", "list", "reports", "--idle", "100ms")
		require.Equal(t, 0, r.code, "URL %q: %s", u, r.stderr)
		assert.Equal(t, "no dead letters in reports.dlq\n", r.stdout, "URL %q", u)
		// What every other command did with it already.
		r = runCLI(t, cleanEnv("UPSTASH_KAFKA_REST_URL="+u), "", "notify", "reports", "{}")
		require.Equal(t, 0, r.code, "notify, URL %q: %s", u, r.stderr)
	}
}
