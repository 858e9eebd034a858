package rpctest_test

import (
	"testing"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestRPCMemory(t *testing.T) {
	rpctest.TestRPC(t, func(t testing.TB, n int) []transport.Transport {
		b := memory.New(memory.WithPartitions(3))
		t.Cleanup(func() { _ = b.Close() })
		out := make([]transport.Transport, n)
		for i := range out {
			out[i] = b
		}
		return out
	})
}
