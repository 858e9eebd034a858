package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// The fix for TestBreakBrokerClockBehindExpiresEveryRequest corrects a
// request's broker timestamp by the skew that the dedup reader measures
// with its sentinel. A server without a dedup reader (its window in memory
// only, WithDedupTopic(""), or dedup off, WithDedup(0, 0), both documented
// settings) never measures it: skew stays 0, and with a broker clock one
// minute behind every request with a budget under a minute still looks
// expired on arrival, is not run, not answered, and is committed.
func TestBreak2BrokerClockBehindWithoutDedupReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  rpc.ServerOption
	}{
		{"window in memory", rpc.WithDedupTopic("")},
		{"dedup off", rpc.WithDedup(0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			st := &skewedTransport{Transport: b, skew: time.Minute}
			s, err := rpc.NewServer(st, rpc.WithName("srv"), rpc.WithGroup("gk2"), tc.opt, silent)
			require.NoError(t, err)
			rpc.Handle(s, "skew2", func(ctx context.Context, n int) (int, error) { return n, nil })
			startServe(t, s)
			_, err = newClient(t, b).Call(context.Background(), "skew2", 1, rpc.WithTimeout(3*time.Second))
			require.NoError(t, err, "a server whose broker's clock is behind answers requests")
		})
	}
}
