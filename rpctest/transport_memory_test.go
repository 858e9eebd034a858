package rpctest_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memoryMaxMessageBytes is a small record limit, so the over-size case stays
// cheap.
const memoryMaxMessageBytes = 64 << 10

// TestMemoryTransport runs the conformance suite against the embedded broker.
func TestMemoryTransport(t *testing.T) {
	rpctest.TestTransport(t, func(t testing.TB) transport.Transport {
		return memory.New(
			memory.WithPartitions(3),
			memory.WithMaxMessageBytes(memoryMaxMessageBytes),
			// Members that keep the default must survive a slow CI
			// machine; the session-timeout case sets its own short one.
			memory.WithSessionTimeout(30*time.Second),
			// Small polls, so records arrive across several Polls.
			memory.WithMaxPollRecords(7),
		)
	}, rpctest.Features{
		Partitions:      3,
		SessionTimeout:  true,
		MaxMessageBytes: memoryMaxMessageBytes,
	})
}
