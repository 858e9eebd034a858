package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A blocked Poll waits on its consumer's wake channel and its ctx alone:
// Close, fencing and the broker's Close reach it through the wake channel.
// Two Polls blocked on one consumer (allowed, if unusual) both return.
func TestBlockedPollsWokenByEveryStop(t *testing.T) {
	stops := map[string]struct {
		stop func(t *testing.T, b *Broker, c transport.Consumer)
		want error
	}{
		"consumer closed": {func(t *testing.T, b *Broker, c transport.Consumer) { require.NoError(t, c.Close()) }, transport.ErrClosed},
		"broker closed":   {func(t *testing.T, b *Broker, c transport.Consumer) { require.NoError(t, b.Close()) }, transport.ErrClosed},
		"member fenced": {func(t *testing.T, b *Broker, c transport.Consumer) {
			twin, err := b.Subscribe(context.Background(), transport.Subscription{Group: "g", Instance: "i", Topics: []string{"t"}})
			require.NoError(t, err)
			t.Cleanup(func() { twin.Close() })
		}, transport.ErrFenced},
	}
	for name, tc := range stops {
		for _, tail := range []bool{false, true} {
			if tail && name == "member fenced" {
				continue
			}
			t.Run(name+map[bool]string{false: "/member", true: "/tail"}[tail], func(t *testing.T) {
				b, err := New(WithPartitions(2))
				require.NoError(t, err)
				t.Cleanup(func() { b.Close() })
				ctx := context.Background()
				var c transport.Consumer
				if tail {
					require.NoError(t, b.CreateTopic("t", 2))
					c, err = b.Tail(ctx, "t")
				} else {
					c, err = b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "i", Topics: []string{"t"}})
				}
				require.NoError(t, err)
				t.Cleanup(func() { c.Close() })
				blocked := make(chan struct{}, 2)
				b.onBlock = func(*Consumer) { blocked <- struct{}{} }
				errs := make(chan error, 2)
				for range 2 {
					go func() {
						_, err := c.Poll(ctx)
						errs <- err
					}()
				}
				for range 2 {
					select {
					case <-blocked:
					case <-time.After(wait):
						t.Fatal("Poll did not block")
					}
				}
				tc.stop(t, b, c)
				for range 2 {
					select {
					case err := <-errs:
						require.True(t, errors.Is(err, tc.want), "got %v, want %v", err, tc.want)
					case <-time.After(wait):
						t.Fatal("a blocked Poll was not woken")
					}
				}
			})
		}
	}
}
