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

// With the dedup reader, the skew it measures is applied only when it is
// over a second (writeSentinel stores 0 otherwise). A broker clock 700 ms
// behind is then taken as no skew, and a request with a budget under 700 ms
// (an interactive call with a 400 ms timeout, say) looks expired on arrival
// every time: not run, not answered, committed.
func TestBreak2SubSecondBrokerSkewExpiresShortRequests(t *testing.T) {
	b := newBroker(t)
	st := &skewedTransport{Transport: b, skew: 700 * time.Millisecond}
	s, err := rpc.NewServer(st, rpc.WithName("srv"), rpc.WithGroup("gk3"), silent)
	require.NoError(t, err)
	rpc.Handle(s, "skew3", func(ctx context.Context, n int) (int, error) { return n, nil })
	startServe(t, s)
	c := newClient(t, b)
	// Warm up (the first call also waits for the group to settle).
	_, err = c.Call(context.Background(), "skew3", 0, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err)
	failed := 0
	for i := 1; i <= 5; i++ {
		if _, err := c.Call(context.Background(), "skew3", i, rpc.WithTimeout(400*time.Millisecond)); err != nil {
			failed++
		}
	}
	require.Zero(t, failed, "calls with a 400ms budget failed with a broker clock 700ms behind")
}
