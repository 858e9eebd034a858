package rpctest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// recordTB records the cleanups and failures of rpctest.Serve, so that a
// test can run them and see whether they fail.
type recordTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

func (r *recordTB) Helper()          {}
func (r *recordTB) Cleanup(f func()) { r.mu.Lock(); r.cleanups = append(r.cleanups, f); r.mu.Unlock() }
func (r *recordTB) Errorf(f string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(f, a...))
}

func (r *recordTB) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// breakO (a new user's first session): a handler test written as the
// README's quick start writes its broker, "defer broker.Close()", with
// rpctest.Serve, failed about one run in two: the deferred Close runs
// before the test's cleanups, so Serve sometimes saw the transport closed
// before its context was canceled, and the cleanup failed the test with
// "Serve returned rpc: Serve: memory: broker is closed". The test's own
// teardown is not the code under test failing: Serve's cleanup does not
// count a closed transport as a failure. Here Serve is made to see the
// closed broker first every time.
func TestBreakOServeCleanupAfterDeferredTransportClose(t *testing.T) {
	rec := &recordTB{TB: t}
	b, err := memory.New()
	require.NoError(t, err)
	s, err := rpc.NewServer(b, rpc.WithName("odefer"))
	require.NoError(t, err)
	rpc.Handle(s, "odefer", func(ctx context.Context, i int) (int, error) { return i, nil })
	rpctest.Serve(rec, s)
	c, err := rpc.NewClient(b, rpc.WithName("odeferc"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := rpc.Call[int](ctx, c, "odefer", 3)
	require.NoError(t, err)
	require.Equal(t, 3, got)

	// The test's deferred Closes.
	require.NoError(t, c.Close())
	require.NoError(t, b.Close())
	// Serve has returned once a second Serve is no longer rpc.ErrServing.
	require.Eventually(t, func() bool {
		return !errors.Is(s.Serve(ctx), rpc.ErrServing)
	}, 10*time.Second, 5*time.Millisecond, "Serve returns once its broker is closed")

	rec.runCleanups()
	assert.Empty(t, rec.errs, "the test's own Close of the transport is no failure")
}

// breakO: the cleanup still fails the test for any other error of Serve.
func TestBreakOServeCleanupStillReportsOtherErrors(t *testing.T) {
	rec := &recordTB{TB: t}
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("onoroutes"))
	require.NoError(t, err)
	rpctest.Serve(rec, s) // no routes: Serve fails at once
	rec.runCleanups()
	require.Len(t, rec.errs, 1)
	assert.Contains(t, rec.errs[0], "no routes")
}
