package rpctest_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// newDurable is newMemory writing to a data dir (fsync always): the durable
// broker must behave as the memory one does.
func newDurable(tb testing.TB) *memory.Broker {
	b, err := memory.NewDurable(tb.TempDir(),
		memory.WithPartitions(memoryPartitions),
		memory.WithMaxMessageBytes(memoryMaxMessageBytes),
		memory.WithMaxPollInterval(30*time.Second),
		memory.WithMaxPollRecords(7),
		memory.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// TestDurableTransport runs the conformance suite against the durable
// broker (memory.NewDurable).
func TestDurableTransport(t *testing.T) {
	rpctest.TestTransport(t, func(tb testing.TB) transport.Transport { return newDurable(tb) }, memoryFeatures)
}

// TestRPCDurable runs the rpc suite over the durable broker.
func TestRPCDurable(t *testing.T) {
	rpctest.TestRPC(t, func(tb testing.TB, n int) []transport.Transport {
		b := newDurable(tb)
		out := make([]transport.Transport, n)
		for i := range out {
			out[i] = b
		}
		return out
	})
}
