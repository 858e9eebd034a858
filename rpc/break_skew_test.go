package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// skewedTransport is a broker whose clock is behind the server's by skew:
// the timestamps it stamps (returned by Produce and Poll) are shifted.
type skewedTransport struct {
	transport.Transport
	skew time.Duration
}

func (s *skewedTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	out, err := s.Transport.Produce(ctx, msgs...)
	for i := range out {
		out[i].Time = out[i].Time.Add(-s.skew)
	}
	return out, err
}

func (s *skewedTransport) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	c, err := s.Transport.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return &skewedConsumer{Consumer: c, skew: s.skew}, nil
}

type skewedConsumer struct {
	transport.Consumer
	skew time.Duration
}

func (c *skewedConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	msgs, err := c.Consumer.Poll(ctx)
	for i := range msgs {
		msgs[i].Time = msgs[i].Time.Add(-c.skew)
	}
	return msgs, err
}

// The dedup window corrects markers' broker timestamps by the clock skew it
// measures with its sentinel (dedup_reader.go), but a request's deadline is
// measured from the record's broker timestamp on the server's clock, with no
// correction (envelope.deadlineFor clamps only a timestamp in the future).
// With a broker clock one minute behind the server's, every request with a
// budget under a minute looks expired on arrival: it is not run, not
// answered, not dead-lettered, and its offset is committed.
func TestBreakBrokerClockBehindExpiresEveryRequest(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	st := &skewedTransport{Transport: b, skew: time.Minute}
	s, err := rpc.NewServer(st, rpc.WithName("srv"), rpc.WithGroup("gk"), silent)
	require.NoError(t, err)
	rpc.Handle(s, "skewx", func(ctx context.Context, n int) (int, error) { return n, nil })
	startServe(t, s)
	_, err = newClient(t, b).Call(context.Background(), "skewx", 1, rpc.WithTimeout(3*time.Second))
	require.NoError(t, err, "a server whose broker's clock is behind answers requests")
}
