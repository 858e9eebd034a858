package main

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// D15: "kafkarpc send" never calls, yet its client read the CLI's reply
// topic: on a server without auto-create, where only the target topic (and
// the notice topic) are made, it failed with "reply reader on
// kafkarpc-cli.replies: unknown topic", as notify did before A15. It needs
// no reply topic now (rpc.WithoutReplies), and, like notify, gives up with
// the transport when the server cannot be reached: without a reply reader
// to fail first, rpc.Client's retries stretched it to 30 s.
func TestD15SendNeedsNoReplyTopic(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithAutoCreate(false)}})
	require.NoError(t, srv.Broker.CreateTopic("reports", 1))
	require.NoError(t, srv.Broker.CreateTopic("web.notices", 1))
	env := cleanEnv("UPSTASH_KAFKA_REST_URL=" + srv.URL)
	r := runCLI(t, env, "", "send", "reports", `{"month":"2024-05"}`, "--notice-topic", "web.notices", "--json")
	require.Equal(t, 0, r.code, "send with only its target topic: %s", r.stderr)
	lines := jsonLines(t, r.stdout)
	require.Len(t, lines, 1)
	assert.Equal(t, "sent", lines[0]["kind"])
	recs, err := srv.Broker.Fetch(t.Context(), "reports", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	replyTo, _ := recs[0].Header(rpc.HeaderReplyTo)
	assert.Equal(t, "web.notices", replyTo, "the notice still goes to the notice topic")
	assert.NotContains(t, srv.Broker.Topics(), "kafkarpc-cli.replies")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	start := time.Now()
	r = runCLI(t, cleanEnv(), "", "send", "reports", "{}", "--url", closed, "--connect-timeout", "1s")
	oneLineErr(t, r, 2, "connection refused")
	assert.Less(t, time.Since(start), 10*time.Second, "send to an unreachable server gives up with the transport")
}
