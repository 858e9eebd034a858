// Package kafkatest starts an in-process Kafka (kfake, through the Kafka
// protocol on a loopback port) with a [kafkabackend.Backend] on it, for
// tests that run the REST server in front of Kafka.
package kafkatest

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// Config configures [Start]. The zero value is one broker, no topics, no
// auto-creation.
type Config struct {
	// Topics to create, name → partitions.
	Topics map[string]int32
	// Brokers is the number of brokers (default 1).
	Brokers int
	// Cluster are more kfake options.
	Cluster []kfake.Opt
	// Backend are the backend's options.
	Backend []kafkabackend.Option
}

// Cluster is a kfake cluster and a backend on it.
type Cluster struct {
	Kfake   *kfake.Cluster
	Backend *kafkabackend.Backend
	// Config reaches the cluster (for more clients).
	Config kafka.Config
}

// Start starts the cluster and the backend and registers their closing
// (backend, then cluster) with tb.Cleanup. It fails tb on error.
func Start(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	n := cfg.Brokers
	if n == 0 {
		n = 1
	}
	// Sessions from 100 ms to the largest Kafka-Session-Timeout-Ms, as
	// restserver's tests use (Apache Kafka's group.min/max.session.timeout.ms
	// defaults are 6 s and 30 min).
	opts := []kfake.Opt{kfake.NumBrokers(n), kfake.WithLogger(kfake.BasicLogger(discard{}, kfake.LogLevelNone)),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond), kfake.GroupMaxSessionTimeout(math.MaxInt32 * time.Millisecond)}
	byCount := map[int32][]string{}
	for t, p := range cfg.Topics {
		byCount[p] = append(byCount[p], t)
	}
	for p, ts := range byCount {
		opts = append(opts, kfake.SeedTopics(p, ts...))
	}
	c, err := kfake.NewCluster(append(opts, cfg.Cluster...)...)
	if err != nil {
		tb.Fatalf("kafkatest: kfake: %v", err)
	}
	kc := kafka.Config{Brokers: c.ListenAddrs(), DialTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := kafkabackend.New(ctx, kc, append([]kafkabackend.Option{kafkabackend.WithLogger(slog.New(slog.DiscardHandler))}, cfg.Backend...)...)
	if err != nil {
		c.Close()
		tb.Fatalf("kafkatest: kafkabackend.New: %v", err)
	}
	tb.Cleanup(func() {
		_ = b.Close()
		c.Close()
	})
	return &Cluster{Kfake: c, Backend: b, Config: kc}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// CreateTopic creates topic with partitions partitions and waits until the
// backend sees it.
func (c *Cluster) CreateTopic(tb testing.TB, topic string, partitions int32) {
	tb.Helper()
	opts, err := c.Config.ClientOpts()
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.Fatalf("kafkatest: create topic %q: %v", topic, err)
	}
	for {
		ts, err := c.Backend.Topics(ctx)
		if err == nil && ts[topic] == partitions {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("kafkatest: topic %q not visible after creation", topic)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
