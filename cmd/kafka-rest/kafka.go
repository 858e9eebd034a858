package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend"
)

// The flags of the embedded broker only: refused with --brokers, where the
// cluster's own settings decide (--partitions is allowed with an explicit
// --auto-create=true: the partition count of topics created on first use).
var embeddedOnly = []string{"topics", "partitions", "retention-records", "retention-bytes", "retention-age",
	"offsets-retention", "max-topics", "max-total-partitions", "data-dir", "fsync"}

// newBackend makes the server's backend: the embedded broker, or with
// --brokers (or any --kafka-* flag) the Kafka backend, reached within
// --kafka-connect-timeout. topics is what to log at start; closeBackend
// closes it after the server.
func newBackend(ctx context.Context, f flags, log *slog.Logger) (b restserver.Backend, topics map[string]int32, closeBackend func(), err error) {
	if !f.kafka.Wanted() {
		broker, err := newBroker(f, log)
		if err != nil {
			return nil, nil, nil, err
		}
		return restserver.NewMemoryBackend(broker), broker.Topics(), func() { _ = broker.Close() }, nil
	}
	autoCreate := f.explicit["auto-create"] && f.autoCreate
	for _, name := range embeddedOnly {
		if f.explicit[name] && !(name == "partitions" && autoCreate) {
			return nil, nil, nil, fmt.Errorf("--%s is a setting of the embedded broker; with --brokers the Kafka cluster's own settings apply (create topics with the cluster's tools)", name)
		}
	}
	kc, err := f.kafka.Config()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--brokers/--kafka-*: %w", err)
	}
	if f.connectTimeout <= 0 {
		return nil, nil, nil, errors.New("--kafka-connect-timeout must be positive")
	}
	opts := []kafkabackend.Option{kafkabackend.WithLogger(log), kafkabackend.WithMaxMessageBytes(f.maxMessage)}
	// Auto-creation is off in front of a cluster unless asked for
	// explicitly.
	if autoCreate {
		opts = append(opts, kafkabackend.WithAutoCreateTopics(int32(max(f.partitions, 1))))
	}
	cctx, cancel := context.WithTimeout(ctx, f.connectTimeout)
	defer cancel()
	start := time.Now()
	kb, err := kafkabackend.New(cctx, kc, opts...)
	if err != nil {
		return nil, nil, nil, contactError{fmt.Errorf("reaching Kafka (%s) within --kafka-connect-timeout %v: %w", kc, f.connectTimeout, err)}
	}
	tctx, tcancel := context.WithTimeout(ctx, f.connectTimeout)
	defer tcancel()
	ts, err := kb.Topics(tctx)
	if err != nil {
		_ = kb.Close()
		return nil, nil, nil, contactError{fmt.Errorf("listing the topics of Kafka (%s): %w", kc, err)}
	}
	topics = ts
	log.Info("kafka-rest: connected to Kafka", "kafka", kc.String(), "took", time.Since(start).Round(time.Millisecond))
	return kb, topics, func() { _ = kb.Close() }, nil
}

// contactError is newBackend's error of reaching Kafka (connecting,
// listing the topics): the one that a stop (ctx canceled) while it waits
// on Kafka causes. Its other errors (flags, the embedded broker's data
// dir) are errors whatever the ctx.
type contactError struct{ error }

func (e contactError) Unwrap() error { return e.error }
