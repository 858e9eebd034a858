package rpc_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
