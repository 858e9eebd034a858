package kafka_test

import (
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// kafkaTransports returns a NewTransports for the rpc suites: n transports
// (each its own set of franz-go clients, as separate processes would have)
// on one cluster.
func kafkaTransports(brokers []string) rpctest.NewTransports {
	return func(t testing.TB, n int) []transport.Transport {
		out := make([]transport.Transport, n)
		for i := range out {
			out[i] = newTransport(t, brokers, kafka.MaxPollInterval(30*time.Second), kafka.PollWindow(250*time.Millisecond))
		}
		return out
	}
}

func TestRPC(t *testing.T) {
	rpctest.TestRPC(t, kafkaTransports(cluster(t)))
}

func TestUnderFaults(t *testing.T) {
	res := rpctest.TestUnderFaults(t, kafkaTransports(cluster(t)), 500, 0.10)
	t.Logf("%+v", res)
}

func TestCrashRecovery(t *testing.T) {
	res := rpctest.TestCrashRecovery(t, kafkaTransports(cluster(t)), 300, 3)
	t.Logf("%+v", res)
}
