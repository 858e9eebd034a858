package rpc_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// The committer "retries with commitBackoff while a commit fails": after a
// failed commit it arms a timer, but only when none is armed (again ==
// nil). When the timer's retry fails too, again still holds the timer's
// channel, already drained, so no new timer is armed: an idle server never
// retries again until another record completes or Serve stops. Here the
// first three commits fail (a broker hiccup of ~100ms); the handled request
// is still uncommitted seconds later, and a crash then would run it again.
func TestBreakCommitRetriedOnlyOnce(t *testing.T) {
	b := newBroker(t)
	t.Cleanup(func() { b.Close() })
	var fails atomic.Int64
	ht := &hookTransport{Transport: b, commit: func(_ context.Context, msgs []transport.Message) error {
		for _, m := range msgs {
			if m.Topic == "commitx" && fails.Add(1) <= 3 {
				return fmt.Errorf("commit request lost: %w", rpctest.ErrInjected)
			}
		}
		return nil
	}}
	s, err := rpc.NewServer(ht, rpc.WithName("srv"), rpc.WithGroup("gcx"), silent)
	require.NoError(t, err)
	rpc.Handle(s, "commitx", func(ctx context.Context, n int) (int, error) { return n, nil })
	t.Cleanup(func() { t.Logf("commit attempts on commitx: %d", fails.Load()) })
	startServe(t, s)
	_, err = newClient(t, b).Call(context.Background(), "commitx", 1, rpc.WithTimeout(5*time.Second))
	require.NoError(t, err)
	// Backoff 50ms, 100ms, 200ms...: the fourth attempt is due well within 2s.
	committedAt(t, b, "gcx", "commitx", 0, 1)
}
