package rpc_test

import (
	"flag"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// TestMain checks, after every test, that no goroutine was left behind.
//
// The slowest tests that mostly wait out drain, commit and hang timeouts
// (about 90 s of waiting under -race) call t.Parallel: they run together
// after the others, up to waitingParallel at a time unless -test.parallel
// is given (its default, GOMAXPROCS, is for tests that keep a CPU busy;
// these mostly sleep). That keeps the package's run, and CI's, over a
// minute shorter. The slow tests that do keep the CPUs busy (rebalance
// churns under load) stay sequential, so that the waiting tests' timing
// is not theirs. A parallel test must not change package state (the vars
// that tests shorten, slog's default, the environment): those that do
// stay sequential, and so never overlap them.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(waitingParallel))
	}
	goleak.VerifyTestMain(m)
}

// waitingParallel is how many of the waiting tests run at once by default.
const waitingParallel = 8

// serveT serves s until the test ends.
func serveT(t *testing.T, s *rpc.Server) {
	t.Helper()
	rpctest.Serve(t, s)
}

// newClient returns a client named "cli" on tr, closed at cleanup.
func newClient(t *testing.T, tr transport.Transport) *rpc.Client {
	t.Helper()
	c, err := rpc.NewClient(tr, rpc.WithName("cli"), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}
