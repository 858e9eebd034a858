package rpc_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// countDLQWarnings22 counts the log's warnings of a missing dead-letter
// topic naming dlq.
func countDLQWarnings22(log, dlq string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "dead-letter topic "+dlq+" does not exist") {
			n++
		}
	}
	return n
}

// A broker that does not create topics on first use, with a served topic
// but not its dead-letter topic: Serve warns once, as it starts, naming
// "<topic>.dlq" and what it is for, and serves calls all the same; a second
// Serve of the same Server does not warn again. A served topic whose
// dead-letter topic exists, or a broker that creates topics, draws no
// warning.
func TestBreak22ServeWarnsOfMissingDeadLetterTopic(t *testing.T) {
	b := newBroker(t, memory.WithAutoCreate(false), memory.WithTopic("q22", 1), memory.WithTopic("q22b", 1),
		memory.WithTopic("q22b.dlq", 1), memory.WithTopic("q22.handled", 1), memory.WithTopic("q22c.replies", 1))
	t.Cleanup(func() { b.Close() })
	var logs lockedLog
	s, err := rpc.NewServer(b, rpc.WithName("q22"), rpc.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	rpc.Handle(s, "q22", func(ctx context.Context, v string) (string, error) { return v, nil })
	rpc.Handle(s, "q22b", func(ctx context.Context, v string) (string, error) { return v, nil })
	c, err := rpc.NewClient(b, rpc.WithName("q22c"), silent)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	for round := range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		served := make(chan error, 1)
		go func() { served <- s.Serve(ctx) }()
		cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
		got, err := rpc.Call[string](cctx, c, "q22", "hi")
		ccancel()
		require.NoError(t, err)
		assert.Equal(t, "hi", got)
		require.Eventually(t, func() bool { return countDLQWarnings22(logs.String(), "q22.dlq") > 0 },
			5*time.Second, 5*time.Millisecond, "round %d: the missing topic is logged: %s", round, logs.String())
		cancel()
		require.NoError(t, <-served)
		assert.Equal(t, 1, countDLQWarnings22(logs.String(), "q22.dlq"), "once per Server: %s", logs.String())
	}
	assert.NotContains(t, logs.String(), "q22b.dlq does not exist")

	// A broker that creates topics on first use: nothing is missing.
	b2 := newBroker(t)
	t.Cleanup(func() { b2.Close() })
	var logs2 lockedLog
	s2, err := rpc.NewServer(b2, rpc.WithName("q22"), rpc.WithLogger(slog.New(slog.NewTextHandler(&logs2, nil))))
	require.NoError(t, err)
	rpc.Handle(s2, "q22", func(ctx context.Context, v string) (string, error) { return v, nil })
	ctx2, cancel2 := context.WithCancel(t.Context())
	served2 := make(chan error, 1)
	go func() { served2 <- s2.Serve(ctx2) }()
	c2, err := rpc.NewClient(b2, rpc.WithName("q22c"), silent)
	require.NoError(t, err)
	t.Cleanup(func() { c2.Close() })
	cctx, ccancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer ccancel()
	_, err = rpc.Call[string](cctx, c2, "q22", "hi")
	require.NoError(t, err)
	cancel2()
	require.NoError(t, <-served2) // the check is over once Serve returned
	assert.NotContains(t, logs2.String(), "does not exist")
}
