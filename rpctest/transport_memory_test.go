package rpctest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	// memoryPartitions is the partition count of auto-created topics.
	memoryPartitions = 3
	// memoryMaxMessageBytes is a small record limit, so the over-size case
	// stays cheap.
	memoryMaxMessageBytes = 64 << 10
)

// memoryFeatures declares what the embedded broker made by newMemory does.
var memoryFeatures = rpctest.Features{
	Partitions:      memoryPartitions,
	Heartbeat:       true,
	MaxPollInterval: true,
	OnRevoked:       true,
	MaxMessageBytes: memoryMaxMessageBytes,
}

// newMemory returns the embedded broker the suite runs against.
func newMemory() *memory.Broker {
	b, err := memory.New(
		memory.WithPartitions(memoryPartitions),
		memory.WithMaxMessageBytes(memoryMaxMessageBytes),
		// Members that keep the default must survive a slow machine; the
		// max-poll-interval case sets its own short one.
		memory.WithMaxPollInterval(30*time.Second),
		// Small polls, so records arrive across several Polls.
		memory.WithMaxPollRecords(7),
	)
	if err != nil {
		panic(err)
	}
	return b
}

// TestMemoryTransport runs the conformance suite against the embedded broker.
func TestMemoryTransport(t *testing.T) {
	rpctest.TestTransport(t, func(testing.TB) transport.Transport { return newMemory() }, memoryFeatures)
}

// A third-party transport can run one case by name.
func TestTransportCaseByName(t *testing.T) {
	var found bool
	for _, c := range rpctest.TransportCases() {
		if c.Name() != "ProducePollRoundTrip" {
			continue
		}
		found = true
		c.Run(t, func(t testing.TB) transport.Transport {
			b, err := memory.New()
			require.NoError(t, err)
			return b
		}, rpctest.Features{})
	}
	require.True(t, found, "the case is listed")
	for _, c := range rpctest.RPCCases() {
		if c.Name == "CallRoundTrip" {
			c.Run(t, func(t testing.TB, n int) []transport.Transport {
				b, err := memory.New()
				require.NoError(t, err)
				t.Cleanup(func() { b.Close() })
				trs := make([]transport.Transport, n)
				for i := range trs {
					trs[i] = b
				}
				return trs
			})
		}
	}
}
