package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// newKfake starts a one-broker Kafka (kfake) on loopback for the example.
func newKfake(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// go run ./examples/reports -kafka host:port: the whole scenario on Kafka
// directly, worker and web app each on its own connection.
func TestRunOnKafkaOneCommand(t *testing.T) {
	t.Setenv(kafka.EnvBrokers, "")
	c := newKfake(t)
	dir := t.TempDir()
	var stdout, stderr syncBuffer
	err := run(ctxT(t, 60*time.Second), []string{"-kafka", c.ListenAddrs()[0], "-dir", dir}, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	checkRunOutput(t, stdout.String(), dir)
	assert.NotContains(t, stderr.String(), "level=ERROR")
	assert.Contains(t, stderr.String(), "on Kafka")
	assert.NotContains(t, stderr.String(), "embedded Kafka REST server")
}

// -role worker and -role web on Kafka named by KAFKA_BROKERS, with SASL
// credentials from the environment: a report is made, and the password is
// in no log line.
func TestRunRolesOnKafkaFromEnv(t *testing.T) {
	c := newKfake(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "reports-user", secretPassword))
	t.Setenv(kafka.EnvBrokers, c.ListenAddrs()[0])
	t.Setenv(kafka.EnvSASLMechanism, kafka.SASLScramSHA256)
	t.Setenv(kafka.EnvSASLUsername, "reports-user")
	t.Setenv(kafka.EnvSASLPassword, secretPassword)
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var workerOut, workerErr, webOut, webErr syncBuffer
	workerDone := make(chan error, 1)
	go func() { workerDone <- run(ctx, []string{"-role", "worker", "-dir", dir}, &workerOut, &workerErr) }()
	webDone := make(chan error, 1)
	go func() {
		webDone <- run(ctx, []string{"-role", "web", "-addr", "127.0.0.1:0", "-dir", dir}, &webOut, &webErr)
	}()
	url := waitForURL(t, &webOut, webDone)

	req, _, _ := lastMonth()
	var out syncBuffer
	_, err := requestReport(ctxT(t, 45*time.Second), url, dir, req, &out)
	require.NoError(t, err, "worker:\n%s\nweb:\n%s", workerErr.String(), webErr.String())
	checkRunOutput(t, out.String(), dir)
	for _, logs := range []string{workerErr.String(), webErr.String()} {
		assert.Contains(t, logs, "on Kafka")
		assert.NotContains(t, logs, secretPassword, "no credentials in the logs")
	}

	cancel()
	for name, done := range map[string]chan error{"worker": workerDone, "web": webDone} {
		select {
		case err := <-done:
			assert.NoError(t, err, name)
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not return after its context ended", name)
		}
	}
}
