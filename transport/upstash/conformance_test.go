package upstash

import (
	"testing"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// conformancePartitions and conformanceMaxBytes are the settings of the REST
// server each conformance case runs against.
const (
	conformancePartitions = 3
	conformanceMaxBytes   = 64 << 10
)

// TestConformance runs the transport suite against the project's REST server
// over loopback, one fresh server per case.
func TestConformance(t *testing.T) {
	rpctest.TestTransport(t, func(tb testing.TB) transport.Transport {
		s := startServer(tb, serverConfig{
			broker: []memory.Option{memory.WithPartitions(conformancePartitions)},
			server: []restserver.Option{restserver.WithMaxMessageBytes(conformanceMaxBytes)},
		})
		tr, err := New(WithURL(s.URL), fastBackoff)
		if err != nil {
			tb.Fatal(err)
		}
		return tr
	}, rpctest.Features{
		Partitions:      conformancePartitions,
		Heartbeat:       true,
		MaxPollInterval: true,
		// OnRevoked: the REST API cannot tell a client of revocation.
		MaxMessageBytes: conformanceMaxBytes,
		CarryingPoller:  true,
	})
}

// TestRPCConformance runs the rpc-level suite end to end over REST: every
// transport it asks for is a separate client of one REST server, as
// separate services would be.
func TestRPCConformance(t *testing.T) {
	rpctest.TestRPC(t, func(tb testing.TB, n int) []transport.Transport {
		s := startServer(tb, serverConfig{broker: []memory.Option{memory.WithPartitions(conformancePartitions)}})
		out := make([]transport.Transport, n)
		for i := range out {
			tr, err := New(WithURL(s.URL), fastBackoff)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() {
				if err := tr.Close(); err != nil {
					tb.Error(err)
				}
			})
			out[i] = tr
		}
		return out
	})
}
