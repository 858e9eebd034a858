package upstash

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The REST server does not create topics (kafka-rest --auto-create=false)
// and has the request topic but not its ".dlq": Serve logs one warning
// naming "<topic>.dlq" once it joined, and serves a Call normally.
func TestBreak22RESTServeWarnsOfMissingDeadLetterTopic(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithAutoCreate(false),
		memory.WithTopic("r22", 1), memory.WithTopic("r22.handled", 1), memory.WithTopic("r22c.replies", 1)}})
	var buf testutil.SyncBuffer
	srv, err := rpc.NewServer(newTestTransport(t, s.URL), rpc.WithName("r22"),
		rpc.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	require.NoError(t, err)
	rpc.Handle(srv, "r22", func(_ context.Context, v string) (string, error) { return v, nil })
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-served)
		assert.Equal(t, 1, strings.Count(buf.String(), "level=WARN"), buf.String())
	}()

	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("r22c"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()
	cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer ccancel()
	got, err := rpc.Call[string](cctx, cli, "r22", "hi")
	require.NoError(t, err)
	assert.Equal(t, "hi", got)
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "dead-letter topic r22.dlq does not exist") },
		5*time.Second, 5*time.Millisecond, "the missing topic is logged: %s", buf.String())
}

// MissingTopics on the REST transport: with auto-creation off, the topics
// the server lacks; with it on, none, as asking creates them (as a produce
// would), and they exist afterwards.
func TestBreak22RESTMissingTopics(t *testing.T) {
	off := startServer(t, serverConfig{broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("have22", 1)}})
	tr := newTestTransport(t, off.URL)
	missing, err := tr.MissingTopics(t.Context(), "have22", "lack22", "lack22")
	require.NoError(t, err)
	assert.Equal(t, []string{"lack22"}, missing)

	on := startServer(t, serverConfig{})
	tr2 := newTestTransport(t, on.URL)
	missing, err = tr2.MissingTopics(t.Context(), "made22")
	require.NoError(t, err)
	assert.Empty(t, missing)
	_, err = tr2.Produce(t.Context(), transport.Message{Topic: "made22", Value: []byte(`"v"`)})
	require.NoError(t, err)
	counts, err := tr2.topicCounts(t.Context())
	require.NoError(t, err)
	assert.Contains(t, counts, "made22")
}
