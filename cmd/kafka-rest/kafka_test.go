package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// startKfake starts an in-process Kafka with topics of one partition.
func startKfake(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

// runErr runs kafka-rest with args and returns its error and log; it must
// return within limit.
func runErr(t *testing.T, limit time.Duration, args ...string) (log string, took time.Duration, err error) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), limit+10*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	select {
	case err = <-done:
		took = time.Since(start)
		require.Less(t, took, limit, "kafka-rest took too long to give up")
		return logs.String(), took, err
	case <-time.After(limit + 10*time.Second):
		t.Fatal("kafka-rest did not return")
	}
	return "", 0, nil
}

func TestBrokersFlagProxiesKafka(t *testing.T) {
	brokers := startKfake(t, kfake.SeedTopics(2, "orders"))
	url, logs, stop := start(t, "--addr", "127.0.0.1:0", "--brokers", brokers)
	assert.Contains(t, logs.String(), "connected to Kafka")

	status, body := get(t, "GET", url+"/topics", "", "", "")
	require.Equal(t, 200, status, body)
	assert.JSONEq(t, `{"orders":2}`, body)

	// Consume first (latest), then produce: the record comes back.
	status, body = get(t, "POST", url+"/consume/g/i", "", "", `{"topic":"orders","timeout":0}`)
	require.Equal(t, 200, status, body)
	status, body = get(t, "POST", url+"/produce", "", "", `{"topic":"orders","key":"k","value":"v1"}`)
	require.Equal(t, 200, status, body)
	// Polled on the test's goroutine (get's require must not run on
	// another, as inside require.Eventually), until the record or 10 s.
	got := false
	for deadline := time.Now().Add(10 * time.Second); !got && time.Now().Before(deadline); {
		status, body = get(t, "POST", url+"/consume/g/i", "", "", `{"topic":"orders","timeout":500}`)
		got = status == 200 && strings.Contains(body, `"value":"v1"`)
	}
	require.True(t, got, "the produced record was not consumed within 10 s: last answer %d %s", status, body)

	// No auto-creation in front of a cluster: 404, fast.
	t0 := time.Now()
	status, body = get(t, "POST", url+"/produce/nope", "", "", `{"value":"x"}`)
	assert.Equal(t, 404, status, body)
	assert.Contains(t, body, "unknown topic")
	assert.Less(t, time.Since(t0), time.Second)

	status, body = get(t, "POST", url+"/delete-consumer/g/i", "", "", "")
	assert.Equal(t, 200, status, body)
	require.NoError(t, stop())
}

func TestBrokersUnreachableExitsWithClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	_, took, err := runErr(t, 5*time.Second, "--addr", "127.0.0.1:0", "--brokers", addr, "--kafka-connect-timeout", "1s")
	require.Error(t, err)
	t.Logf("after %v: %v", took, err)
	assert.Contains(t, err.Error(), "reaching Kafka")
	assert.Contains(t, err.Error(), addr)
}

func TestWrongSASLPasswordIsClearAndNeverLogged(t *testing.T) {
	brokers := startKfake(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "right-password"), kfake.SeedTopics(1, "t"))
	const wrong = "wr0ng-Pa55word-xyz"
	t.Setenv("KAFKA_SASL_PASSWORD", wrong)
	log, _, err := runErr(t, 20*time.Second, "--addr", "127.0.0.1:0", "--brokers", brokers,
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "admin", "--kafka-connect-timeout", "5s")
	require.Error(t, err)
	t.Logf("error: %v", err)
	assert.Contains(t, strings.ToLower(err.Error()), "authentication")
	assert.NotContains(t, err.Error(), wrong)
	assert.NotContains(t, log, wrong)

	// The right password works (from the environment too).
	t.Setenv("KAFKA_SASL_PASSWORD", "right-password")
	url, logs, stop := start(t, "--addr", "127.0.0.1:0", "--brokers", brokers,
		"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "admin")
	status, body := get(t, "GET", url+"/topics", "", "", "")
	assert.Equal(t, 200, status, body)
	require.NoError(t, stop())
	assert.NotContains(t, logs.String(), "right-password")
}

func TestEmbeddedOnlyFlagsRefusedWithBrokers(t *testing.T) {
	_, _, err := runErr(t, 5*time.Second, "--addr", "127.0.0.1:0", "--brokers", "127.0.0.1:1", "--topics", "a")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--topics")
	_, _, err = runErr(t, 5*time.Second, "--addr", "127.0.0.1:0", "--brokers", "nohostport")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "host:port")
}

// SIGTERM (ctx canceled) while kafka-rest is still reaching Kafka is a
// stop, not a failure: run returns nil at once, where it returned "reaching
// Kafka ...: context canceled" and the process exited 1.
func TestStopWhileReachingKafkaIsClean(t *testing.T) {
	// The connect waits until its timeout (30 s here) or the stop.
	ln, accepted := silentBroker(t)

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--brokers", ln.Addr().String(), "--kafka-connect-timeout", "30s"}, io.Discard, logs)
	}()
	var first net.Conn
	select {
	case first = <-accepted: // kafka-rest is reaching Kafka
	case err := <-done:
		t.Fatalf("run returned before it reached the broker: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("kafka-rest never dialed the broker")
	}
	defer first.Close()
	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "a stop while reaching Kafka is not a failure; log:\n%s", logs.String())
		assert.Less(t, time.Since(stopped), 5*time.Second)
		assert.Contains(t, logs.String(), "stopped before it started")
	case <-time.After(10 * time.Second):
		t.Fatal("kafka-rest did not return after its stop")
	}
}

// silentBroker listens on a loopback port that accepts connections and
// never answers (a broker that hangs), and returns the listener and the
// connections it accepted; both are closed at cleanup.
func silentBroker(t *testing.T) (net.Listener, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 1024)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})
	return ln, accepted
}
