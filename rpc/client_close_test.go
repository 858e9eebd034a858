package rpc_test

// Regression tests for the client (issue 13: bugs 6 and 10).

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Issue 13, bug 10: Close ends a Call, Send or Notify whose request
// produce is being retried, promptly and with ErrClosed, not at the call's
// deadline.
func TestCloseEndsProduceRetry(t *testing.T) {
	ops := map[string]func(ctx context.Context, c *rpc.Client) error{
		"Call": func(ctx context.Context, c *rpc.Client) error {
			_, err := c.Call(ctx, "down10", 1, rpc.WithTimeout(30*time.Second))
			return err
		},
		"Send": func(ctx context.Context, c *rpc.Client) error {
			_, err := c.Send(ctx, "down10", 1, rpc.WithTimeout(30*time.Second))
			return err
		},
		"Notify": func(ctx context.Context, c *rpc.Client) error {
			return c.Notify(ctx, "down10", 1, rpc.WithTimeout(30*time.Second))
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			b := newBroker(t)
			t.Cleanup(func() { b.Close() })
			var tries atomic.Int64
			ht := &hookTransport{Transport: b, produce: func(_ context.Context, msgs []transport.Message) error {
				if msgs[0].Topic == "down10" {
					tries.Add(1)
					return fmt.Errorf("broker unreachable: %w", rpctest.ErrInjected)
				}
				return nil
			}}
			c, err := rpc.NewClient(ht, rpc.WithName("cli"), quiet, rpc.WithCallTimeout(30*time.Second))
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- op(ctx, c) }()
			require.Eventually(t, func() bool { return tries.Load() >= 2 }, 5*time.Second, time.Millisecond,
				"the produce is being retried")
			closed := time.Now()
			require.NoError(t, c.Close())
			select {
			case err := <-done:
				assert.Less(t, time.Since(closed), 2*time.Second)
				assert.True(t, errors.Is(err, rpc.ErrClosed), "want ErrClosed, got %v", err)
			case <-time.After(3 * time.Second):
				t.Errorf("%s still retrying 3s after Close", name)
				cancel()
				<-done
			}
		})
	}
}

// Issue 13, bug 6: WithResend does not run a keyless request twice when
// its resends would land on a partition owned by another server.
func TestKeylessResendRunsOnce(t *testing.T) {
	b := newBroker(t, memory.WithTopic("resend6", 2))
	t.Cleanup(func() { b.Close() })
	runs := newRunCounter()
	for range 2 {
		s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("g6"), quiet, rpc.WithConcurrency(4))
		require.NoError(t, err)
		rpc.Handle(s, "resend6", func(ctx context.Context, n int) (int, error) {
			runs.enter(n)
			select {
			case <-time.After(300 * time.Millisecond): // the handler's work
			case <-ctx.Done():
			}
			return n, nil
		})
		serveT(t, s)
	}
	require.Eventually(t, func() bool {
		for _, g := range b.Groups() {
			if g.Name != "g6" || len(g.Members) != 2 {
				continue
			}
			for _, m := range g.Members {
				if len(m.Assignment["resend6"]) != 1 {
					return false
				}
			}
			return true
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "each server owns one partition")

	c, err := rpc.NewClient(b, rpc.WithName("cli"), quiet, rpc.WithResend(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	const n = 6
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.Call(context.Background(), "resend6", i, rpc.WithTimeout(5*time.Second))
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	for i := range n {
		assert.Equal(t, 1, runs.get(i), "request %d: handler runs", i)
	}
}
