package rpc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// Serve's doc: on cancel it "waits for in-flight handlers up to the drain
// timeout (WithDrainTimeout), commits what was handled, leaves the group and
// returns". A handler that does not watch its context keeps Serve from
// returning for as long as it runs: drain waits on the workers without any
// bound after the hard stop and finalGrace (<-drained), so the member never
// leaves its group and nothing handled since the last commit is committed.
func TestBreakServeHangsOnHandlerIgnoringContext(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	entered, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release) // let the goroutines end for goleak
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithGroup("gh"),
		rpc.WithDrainTimeout(50*time.Millisecond), silent)
	require.NoError(t, err)
	rpc.Handle(s, "hangx", func(ctx context.Context, n int) (int, error) {
		close(entered)
		<-unblock // a call into a library that takes no context
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	require.NoError(t, newClient(t, b).Notify(context.Background(), "hangx", 1))
	<-entered
	cancel()
	select {
	case <-done:
	case <-time.After(50*time.Millisecond + 5*time.Second + 3*time.Second): // drain + finalGrace + slack
		t.Error("Serve did not return after its drain timeout and grace")
		release()
		<-done
	}
}
