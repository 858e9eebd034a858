package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A15 (a first-time user's review): a second Serve of a serving Server
// returned errors.New("rpc: Serve: already serving"), which a caller could
// tell apart only by its text. It is rpc.ErrServing, for errors.Is; the
// message is unchanged.
func TestA15SecondServeIsErrServing(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("a15serving"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "a15serving", func(ctx context.Context, n int) (int, error) { return n, nil })
	serveT(t, s)

	// A reply says the first Serve is serving.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := rpc.Call[int](ctx, newClient(t, b), "a15serving", 7)
	require.NoError(t, err)
	require.Equal(t, 7, got)

	err = s.Serve(ctx)
	require.Error(t, err)
	require.True(t, errors.Is(err, rpc.ErrServing), "errors.Is(%v, rpc.ErrServing)", err)
	require.EqualError(t, err, "rpc: Serve: already serving")
}
