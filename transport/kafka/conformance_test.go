package kafka_test

import (
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// kafkaFeatures declares what transport/kafka does for the suite.
var kafkaFeatures = rpctest.Features{
	Partitions:      testPartitions,
	Heartbeat:       true,
	MaxPollInterval: true,
	OnRevoked:       true,
	MaxMessageBytes: 64 << 10,
}

func TestTransportConformance(t *testing.T) {
	brokers := cluster(t)
	rpctest.TestTransport(t, func(t testing.TB) transport.Transport {
		return newTransport(t, brokers,
			kafka.MaxMessageBytes(64<<10),
			kafka.MaxPollInterval(30*time.Second),
			kafka.MaxPollRecords(7),
			kafka.PollWindow(250*time.Millisecond))
	}, kafkaFeatures)
}
