package kafka_test

import (
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// EnvTestBrokers names a real cluster to run the suites against instead of
// kfake, e.g. KAFKARPC_KAFKA_BROKERS=127.0.0.1:9092. It must allow topic
// creation and group.min.session.timeout.ms at most 300 ms for the short
// session cases.
const EnvTestBrokers = "KAFKARPC_KAFKA_BROKERS"

// testPartitions is the partition count of the topics the tests create.
const testPartitions = 3

// cluster returns the brokers to test against: KAFKARPC_KAFKA_BROKERS when
// set, else a fresh one-broker kfake cluster closed at the end of the test.
func cluster(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	if env := os.Getenv(EnvTestBrokers); env != "" && len(opts) == 0 {
		return kafka.SplitBrokers(env)
	}
	c := newFake(t, opts...)
	return c.ListenAddrs()
}

// newFake starts a one-broker kfake cluster with short group session floors.
func newFake(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(testPartitions),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newTransport connects to brokers with the tests' options and closes the
// transport at the end of the test.
func newTransport(t testing.TB, brokers []string, opts ...kafka.Option) *kafka.Transport {
	t.Helper()
	tr, err := kafka.New(append([]kafka.Option{kafka.Brokers(brokers...), kafka.AutoCreateTopics(testPartitions, -1), kafka.HeartbeatInterval(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}
