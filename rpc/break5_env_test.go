package rpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BUG (fixed: a Server whose group is not its name takes
// "<KAFKA_INSTANCE>.<name>"): KAFKA_INSTANCE is a process-wide variable (the Laravel article sets
// it per process/pod), but rpc.NewServer now takes it as the member id of
// EVERY Server the process makes. Two Servers of one process that join the
// same group (WithGroup) for different topics (a common layout: one group
// per application, one Server per module) become "twins" with one member
// id, and the second fences the first: its Serve returns ErrFenced and its
// topic is served by nobody. Before KAFKA_INSTANCE was read by default,
// the same program worked; with the variable merely present in the
// environment (set for another library, as the seed's article does), it
// now silently loses a service. The doc of WithInstance speaks of "two
// live processes" with one id, not of two Servers in one process.
func TestBreak5EnvInstanceTwoServersOneGroupFenceEachOther(t *testing.T) {
	t.Setenv(rpc.EnvInstance, "pod-1")
	b := newBroker(t, memory.WithTopic("orders", 1), memory.WithTopic("invoices", 1))
	mk := func(name, topic string) (*rpc.Server, <-chan error) {
		s, err := rpc.NewServer(b, rpc.WithName(name), rpc.WithGroup("shop"), quiet)
		require.NoError(t, err)
		rpc.Handle(s, topic, func(_ context.Context, n int) (int, error) { return n + 1, nil })
		return s, serveAsync(t, s)
	}
	_, doneA := mk("orders-srv", "orders")
	c := newClient(t, b)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	got, err := rpc.Call[int](ctx, c, "orders", 1)
	require.NoError(t, err)
	require.Equal(t, 2, got)

	_, doneB := mk("invoices-srv", "invoices")
	got, err = rpc.Call[int](ctx, c, "invoices", 1)
	require.NoError(t, err)
	require.Equal(t, 2, got)

	select {
	case err := <-doneA:
		t.Fatalf("the orders server stopped when the invoices server of the same process started: %v", err)
	case err := <-doneB:
		t.Fatalf("the invoices server stopped: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel2()
	got, err = rpc.Call[int](ctx2, c, "orders", 2)
	require.NoError(t, err, "orders is no longer served")
	require.Equal(t, 3, got)
}
