package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Every bad option is refused by its constructor (or, for call options, by
// the call) with an error naming the option: none is clamped or replaced by
// a default in silence.
func TestBadOptionsAreNamed(t *testing.T) {
	b := newBroker(t)
	clientCases := map[string]rpc.ClientOption{
		"WithName":        rpc.WithName(""),
		"WithCallTimeout": rpc.WithCallTimeout(-time.Second),
		"WithResend":      rpc.WithResend(-time.Second),
		"WithNoticeDedup": rpc.WithNoticeDedup(-1),
		"WithReplyTopic":  rpc.WithReplyTopic(""),
		"WithNoticeTopic": rpc.WithNoticeTopic(""),
		"WithNoticeGroup": rpc.WithNoticeGroup(""),

		"WithNoticeInstance": rpc.WithNoticeInstance("a\nb"),
	}
	for name, opt := range clientCases {
		_, err := rpc.NewClient(b, opt)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), name, "the error names the option")
	}
	serverCases := map[string]rpc.ServerOption{
		"WithName":            rpc.WithName(""),
		"WithConcurrency":     rpc.WithConcurrency(0),
		"WithDrainTimeout":    rpc.WithDrainTimeout(-time.Second),
		"WithMaxPayload":      rpc.WithMaxPayload(-1),
		"WithDedup":           rpc.WithDedup(10, 0),
		"WithRetry":           rpc.WithRetry(0, time.Second),
		"WithSessionTimeout":  rpc.WithSessionTimeout(-time.Second),
		"WithMaxPollInterval": rpc.WithMaxPollInterval(-time.Second),
		"WithCommitInterval":  rpc.WithCommitInterval(-time.Second),
		"WithInstance":        rpc.WithInstance("two words"),
	}
	for name, opt := range serverCases {
		_, err := rpc.NewServer(b, opt)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), name, "the error names the option")
	}

	c := newClient(t, b)
	ctx := context.Background()
	callCases := map[string]rpc.CallOption{
		"WithTimeout": rpc.WithTimeout(-time.Second),
		"WithMethod":  rpc.WithMethod("a/b"),
	}
	for name, opt := range callCases {
		_, err := c.Call(ctx, "t", 1, opt)
		require.Error(t, err, name)
		assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err), name)
		assert.Contains(t, err.Error(), name)
		_, err = c.Send(ctx, "t", 1, opt)
		assert.Contains(t, err.Error(), name)
		assert.Contains(t, c.Notify(ctx, "t", 1, opt).Error(), name)
	}
}

// newBroker returns an embedded broker with opts, closed at cleanup.
func newBroker(t *testing.T, opts ...memory.Option) *memory.Broker {
	t.Helper()
	b, err := memory.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}
