package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// README: "Client.Close fails pending calls, including those whose request
// is still being retried, with rpc.ErrClosed." Close reaches a produce only
// from its second attempt (Client.produce wires c.ctx into the retry loop):
// a first attempt that hangs (a request stuck on a slow network, which the
// transport bounds only by ctx) holds the Call until its deadline, and it
// then fails with a timeout, not ErrClosed.
func TestBreakCloseDoesNotEndFirstProduce(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	inProduce := make(chan struct{}, 1)
	ht := &hookTransport{Transport: b, produce: func(ctx context.Context, msgs []transport.Message) error {
		if msgs[0].Topic == "hungx" {
			inProduce <- struct{}{}
			<-ctx.Done() // the network hangs; the transport honours ctx
			return ctx.Err()
		}
		return nil
	}}
	c, err := rpc.NewClient(ht, rpc.WithName("cli"), silent)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "hungx", 1, rpc.WithTimeout(4*time.Second))
		done <- err
	}()
	<-inProduce
	closed := time.Now()
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		assert.Less(t, time.Since(closed), time.Second, "Call returned promptly after Close")
		assert.True(t, errors.Is(err, rpc.ErrClosed), "Call fails with ErrClosed, got %v", err)
	case <-time.After(6 * time.Second):
		t.Fatal("Call did not return")
	}
}
