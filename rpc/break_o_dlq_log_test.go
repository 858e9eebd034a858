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

// breakO (a new user's first session, kafka-rest without auto-create and
// no "reports.dlq"): an oversize request was logged "WARN rpc: record
// dead-lettered ... dlq=reports.dlq", then "ERROR rpc: dead letter lost:
// the transport refused it": the first line, written before the produce,
// said the record was where it never got. The log says one thing per
// record: dead-lettered once written, lost when refused.
func TestBreakODeadLetterLoggedOnlyOnceWritten(t *testing.T) {
	b := newBroker(t, memory.WithAutoCreate(false), memory.WithTopic("odlq", 1),
		memory.WithTopic("odlq.handled", 1), memory.WithTopic("odlqc.replies", 1))
	t.Cleanup(func() { b.Close() })
	var logs lockedLog
	s, err := rpc.NewServer(b, rpc.WithName("odlq"), rpc.WithMaxPayload(16),
		rpc.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	rpc.Handle(s, "odlq", func(ctx context.Context, v string) (string, error) { return v, nil })
	startServe(t, s)
	c, err := rpc.NewClient(b, rpc.WithName("odlqc"), silent)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	_, err = rpc.Call[string](ctx, c, "odlq", strings.Repeat("x", 64))
	require.Equal(t, rpc.CodeResourceExhausted, rpc.CodeOf(err), "the caller still hears: %v", err)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "dead letter lost") },
		5*time.Second, 5*time.Millisecond, "the lost dead letter is logged")
	assert.NotContains(t, logs.String(), "record dead-lettered", "nothing was dead-lettered")
	assert.Zero(t, s.Stats().DeadLettered, "a dead letter refused is not counted")

	// With the topic there, the line comes.
	require.NoError(t, b.CreateTopic("odlq.dlq", 1))
	_, err = rpc.Call[string](ctx, c, "odlq", strings.Repeat("y", 64))
	require.Equal(t, rpc.CodeResourceExhausted, rpc.CodeOf(err))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "record dead-lettered") },
		5*time.Second, 5*time.Millisecond)
	assert.Equal(t, int64(1), s.Stats().DeadLettered)
}
