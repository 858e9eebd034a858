package main

import (
	"context"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// kafka-rest in front of a Kafka (kfake), stopped (ctx canceled, as
// SIGTERM does) at random moments of its start: while it reaches Kafka,
// while it lists the topics, while it opens its listener, after it
// serves. run returns nil every time, within a few seconds; goleak (in
// TestMain) checks that nothing it started is left running.
func TestBreak18StopAtRandomMomentsOfStartWithKfake(t *testing.T) {
	brokers := startKfake(t, kfake.SeedTopics(1, "orders"))
	const iterations = 40
	var before, after int
	for i := range iterations {
		wait := time.Duration(rand.Int64N(int64([]time.Duration{2 * time.Millisecond, 20 * time.Millisecond, 80 * time.Millisecond}[i%3])))
		log := stopRunAfter(t, i, wait, "--addr", "127.0.0.1:0", "--brokers", brokers, "--kafka-connect-timeout", "20s")
		if strings.Contains(log, "stopped before it started") {
			before++
		} else {
			after++
		}
	}
	t.Logf("of %d stops: %d before kafka-rest reached Kafka, %d after", iterations, before, after)
}

// The same against a broker address that accepts connections and never
// answers, stopped at random moments while kafka-rest waits on it.
func TestBreak18StopAtRandomMomentsWhileReachingASilentBroker(t *testing.T) {
	ln, _ := silentBroker(t)
	for i := range 20 {
		wait := time.Duration(rand.Int64N(int64(300 * time.Millisecond)))
		log := stopRunAfter(t, i, wait, "--addr", "127.0.0.1:0", "--brokers", ln.Addr().String(), "--kafka-connect-timeout", "30s")
		assert.Contains(t, log, "stopped before it started", "iteration %d", i)
	}
}

// stopRunAfter runs kafka-rest with args, stops it (ctx canceled, as
// SIGTERM does) after wait, which must come before it returns on its own,
// and requires that run then returns nil within 5 s. It returns the log.
func stopRunAfter(t *testing.T, i int, wait time.Duration, args ...string) string {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	select {
	case err := <-done:
		t.Fatalf("iteration %d: run returned before its stop: %v\n%s", i, err, logs.String())
	case <-time.After(wait): // the random moment of the stop
	}
	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "iteration %d (stopped after %v); log:\n%s", i, wait, logs.String())
		assert.Less(t, time.Since(stopped), 5*time.Second, "iteration %d", i)
	case <-time.After(20 * time.Second):
		t.Fatalf("iteration %d: run did not return after its stop; log:\n%s", i, logs.String())
	}
	return logs.String()
}
