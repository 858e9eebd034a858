package main

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A15 (a first-time user's review): "kafkarpc notify" needed the CLI's
// reply topic (kafkarpc-cli.replies) though nothing replies to a
// notification: against kafka-rest without auto-create, where only the
// target topic exists, it failed with "reply reader on
// kafkarpc-cli.replies: ... unknown topic". It needs only its target topic
// now, and writes the record rpc.Client.Notify writes: the same key, value
// and headers (but the id's value).
func TestA15NotifyNeedsOnlyItsTopic(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithAutoCreate(false)}})
	require.NoError(t, srv.Broker.CreateTopic("cache", 1))
	env := cleanEnv("UPSTASH_KAFKA_REST_URL=" + srv.URL)

	r := runCLI(t, env, "", "notify", "cache", `{"evict":"user:7"}`, "--key", "users", "--method", "evict", "--header", "x-tenant=acme")
	require.Equal(t, 0, r.code, "notify with only its target topic: %s", r.stderr)
	assert.Equal(t, "notified cache\n", r.stdout)
	assert.Empty(t, r.stderr)

	// What rpc.Client.Notify writes with the same options, as the CLI
	// passes them.
	require.NoError(t, srv.Broker.CreateTopic("a15-ref.replies", 1))
	c, err := rpc.NewClient(srv.Broker, rpc.WithName("kafkarpc-cli"), rpc.WithReplyTopic("a15-ref.replies"))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Notify(ctx, "cache", json.RawMessage(`{"evict":"user:7"}`),
		rpc.WithTimeout(30*time.Second), rpc.WithMethod("evict"), rpc.WithKey("users"), rpc.WithHeader("x-tenant", "acme")))

	recs, err := srv.Broker.Fetch(ctx, "cache", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, recs, 2, "the CLI's notification and the reference")
	cli, ref := recs[0], recs[1]
	ids := [2]string{}
	for i, m := range []*transport.Message{&cli, &ref} {
		for j := range m.Headers {
			if m.Headers[j].Key == rpc.HeaderID {
				ids[i] = m.Headers[j].Value
				m.Headers[j].Value = "<id>"
			}
		}
	}
	assert.Equal(t, ref.Headers, cli.Headers)
	assert.Equal(t, ref.Key, cli.Key)
	assert.Equal(t, ref.Value, cli.Value)
	id, err := uuid.Parse(ids[0])
	require.NoError(t, err, "the CLI's rpc-id is a UUID")
	assert.Equal(t, uuid.Version(7), id.Version())
	assert.NotEqual(t, ids[1], ids[0])

	assert.NotContains(t, srv.Broker.Topics(), "kafkarpc-cli.replies")
}

// A15: a notification is one Produce for rpc.Client (sendOnly.giveUp): the
// transport's own retries, within --connect-timeout, are all it gets.
// Without a reply reader to fail first, a wrong path in --url (a 404 the
// transport does not retry) was retried by rpc.Client until --timeout
// (30 s), and an unreachable server likewise.
func TestA15NotifyGivesUpWithTheTransport(t *testing.T) {
	t.Parallel()
	srv := resttest.Start(t, resttest.Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	for _, c := range []struct {
		url, says string
	}{
		{srv.URL + "/v1", "unknown route"},
		{closed, "connection refused"},
	} {
		start := time.Now()
		r := runCLI(t, cleanEnv(), "", "notify", "reports", "{}", "--url", c.url, "--connect-timeout", "1s")
		took := time.Since(start)
		oneLineErr(t, r, 2, c.says)
		assert.Less(t, took, 10*time.Second, "notify to %s gives up with the transport, not at --timeout", c.url)
	}
}
