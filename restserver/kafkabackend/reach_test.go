package kafkabackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// With the brokers down, an operation whose context runs out while kgo
// still retries the dial is the brokers' absence, as a refused dial is:
// restserver.ErrUnavailable (503, retry), not a bare deadline (504).
// TestBreak6BrokersDownAre503NotHangOr500 answered 504 for a consume that
// creates an instance when the deadline came first (CI, under load).
func TestDeadlineWithBrokersDownIsUnavailable(t *testing.T) {
	b := brokersGone(t)

	for _, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"t"}, Instance: "i"})
		cancel()
		require.Error(t, err)
		require.ErrorIs(t, err, restserver.ErrUnavailable, "subscribe with %v: %v", d, err)

		ctx, cancel = context.WithTimeout(context.Background(), d)
		_, err = b.Produce(ctx, transport.Message{Topic: "t", Value: []byte("x")})
		cancel()
		require.ErrorIs(t, err, restserver.ErrUnavailable, "produce with %v: %v", d, err)
	}
}

// The shared client's dials count too: with the brokers down and no member
// ever made (so no member's dial can have failed), a produce whose deadline
// runs out while kgo retries the dial is ErrUnavailable, not a bare
// deadline. The shared client (topics, produce, fetch, offsets) was made
// without the reach hook, so only members' dials were recorded:
// TestDeadlineWithBrokersDownIsUnavailable passed only when the 1ms
// subscribe's own member dialled (and was refused) before its deadline,
// and failed under load (seen in -race runs with CPU hogs).
func TestDeadlineWithBrokersDownIsUnavailableWithoutMembers(t *testing.T) {
	b := brokersGone(t)

	for _, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err := b.Produce(ctx, transport.Message{Topic: "t", Value: []byte("x")})
		cancel()
		require.ErrorIs(t, err, restserver.ErrUnavailable, "produce with %v: %v", d, err)
	}
}

// brokersGone starts a cluster with topic "t" (2 partitions), makes sure
// its backend reached it, closes the brokers and returns the backend once
// it has seen a dial fail: until then nothing says the brokers are gone
// (a deadline alone stays a deadline).
func brokersGone(t *testing.T) *kafkabackend.Backend {
	t.Helper()
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 2}})
	b := c.Backend
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.Topics(ctx)
	require.NoError(t, err)

	c.Kfake.Close()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := b.Topics(ctx)
		return errors.Is(err, restserver.ErrUnavailable)
	}, 10*time.Second, 10*time.Millisecond)
	return b
}
