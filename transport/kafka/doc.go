// Package kafka connects kafkarpc to an Apache Kafka cluster (or any
// Kafka-protocol broker: Redpanda, MSK, Confluent Cloud) with franz-go.
//
// Config, ConfigFromEnv and Config.ClientOpts describe how to reach a
// cluster (seed brokers, SASL PLAIN or SCRAM, TLS); they are shared by this
// package and by kafka-rest's Kafka backend.
package kafka
