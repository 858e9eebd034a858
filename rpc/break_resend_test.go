package rpc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// With WithResend, Call's loop produces the resend inline, and a resend
// whose produce keeps failing retries until the call's deadline: a reply
// that arrives meanwhile waits in its channel, unread. The Call returns
// only when the resend gives up, at its deadline, and then picks at random
// between the reply and its expired timer: a call answered in 150ms takes
// the whole timeout and may even fail with a timeout.
func TestBreakResendRetryHoldsBackReply(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var requests atomic.Int64
	ht := &hookTransport{Transport: b, produce: func(_ context.Context, msgs []transport.Message) error {
		if msgs[0].Topic == "resendx" && requests.Add(1) > 1 {
			return fmt.Errorf("request topic unavailable: %w", rpctest.ErrInjected)
		}
		return nil
	}}
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gre"), silent)
	require.NoError(t, err)
	rpc.Handle(s, "resendx", func(ctx context.Context, n int) (int, error) {
		select {
		case <-time.After(150 * time.Millisecond): // answered after the first resend started
		case <-ctx.Done():
		}
		return n, nil
	})
	serveT(t, s)
	c, err := rpc.NewClient(ht, rpc.WithName("cli"), rpc.WithResend(50*time.Millisecond), silent)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	start := time.Now()
	_, err = c.Call(context.Background(), "resendx", 1, rpc.WithTimeout(3*time.Second))
	took := time.Since(start)
	assert.NoError(t, err, "the call was answered")
	assert.Less(t, took, time.Second, "the call returns soon after its reply (150ms), not at its deadline")
}
