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
		SessionTimeout:  true,
		MaxMessageBytes: conformanceMaxBytes,
	})
}
