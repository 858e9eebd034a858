package rpctest_test

import (
	"testing"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestRPCMemory(t *testing.T) {
	rpctest.TestRPC(t, func(t testing.TB, n int) []transport.Transport {
		b, err := memory.New(memory.WithPartitions(3))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		out := make([]transport.Transport, n)
		for i := range out {
			out[i] = b
		}
		return out
	})
}

func memoryTransports(t testing.TB, n int) []transport.Transport {
	b, err := memory.New(memory.WithPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	out := make([]transport.Transport, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestFaultsMemory(t *testing.T) {
	res := rpctest.TestUnderFaults(t, memoryTransports, 2000, 0.10)
	t.Logf("%+v", res)
}

func TestCrashMemory(t *testing.T) {
	res := rpctest.TestCrashRecovery(t, memoryTransports, 1000, 3)
	t.Logf("%+v", res)
}
