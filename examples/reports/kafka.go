package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// reportsPartitions is the partition count of the topics the example
// creates on a Kafka cluster that lacks them.
const reportsPartitions = 3

// onKafka reports whether the example runs on Kafka directly: -kafka given,
// or KAFKA_BROKERS set.
func (cfg config) onKafka() bool {
	return cfg.kafka != "" || strings.TrimSpace(os.Getenv(kafka.EnvBrokers)) != ""
}

// kafkaTransport connects to the cluster named by -kafka (plaintext), or
// else by KAFKA_BROKERS and the optional KAFKA_SASL_* / KAFKA_TLS_*
// variables. It creates the example's topics when missing (3 partitions,
// the broker's replication factor): a production deployment would
// provision them instead.
func kafkaTransport(cfg config, log *slog.Logger) (*kafka.Transport, error) {
	opts := []kafka.Option{kafka.AutoCreateTopics(reportsPartitions, -1)}
	if cfg.kafka != "" {
		t, err := kafka.New(append(opts, kafka.Brokers(kafka.SplitBrokers(cfg.kafka)...))...)
		if err == nil {
			log.Info("on Kafka", "brokers", cfg.kafka)
		}
		return t, err
	}
	c, err := kafka.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	t, err := kafka.New(append(opts, kafka.WithConfig(c))...)
	if err == nil {
		log.Info("on Kafka", "config", c.String()) // String redacts the password
	}
	return t, err
}

// runAllOnKafka runs the worker and the web app in this process, each on its
// own connection to the Kafka cluster, then one report (or, with -serve,
// the web app until ctx ends).
func runAllOnKafka(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	workerT, err := kafkaTransport(cfg, log)
	if err != nil {
		return err
	}
	defer workerT.Close()
	webT, err := kafkaTransport(cfg, log)
	if err != nil {
		return err
	}
	defer webT.Close()
	return runPair(ctx, cfg, log, stdout, workerT, webT)
}
