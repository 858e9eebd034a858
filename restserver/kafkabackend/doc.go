// Package kafkabackend is a [restserver.Backend] in front of a Kafka
// cluster, on franz-go (kgo and kadm), so that kafka-rest --brokers is an
// Upstash-compatible REST proxy for Apache Kafka, Redpanda, MSK or
// Confluent Cloud.
//
// Make one with [New] from a transport/kafka Config (brokers, SASL, TLS),
// hand it to restserver.New, and close it after the server.
//
// # How the REST API maps onto Kafka
//
//   - Produce: one shared client, linger 0, acks all, idempotent. Keyed
//     records are placed with Kafka's murmur2 (the same partition as the
//     embedded broker and the Java client); an empty key is unkeyed.
//     Topics are never auto-created unless [WithAutoCreateTopics] asks;
//     an unknown topic is a 404 from metadata at once, not after retries.
//   - Consumer instances: each REST instance is a kgo client of its own in
//     the group, with group.instance.id = the instance name (static
//     membership), auto-commit off (the REST server commits). Its polls are
//     serialized and bounded by the request's deadline. Delete and idle
//     expiry close the client and send LeaveGroup by instance id, so the
//     partitions move at once (closing a static member alone would keep
//     them until the session timeout). Commits go through the instance's
//     own client, only for partitions it owns now.
//   - /fetch, /offsets, /topics, /committed: raw Fetch and ListOffsets to
//     the leaders (one ListOffsets per leader for the partitions of a
//     request or of a scrape's consumer lag, [restserver.OffsetsLister]),
//     kadm metadata, and one OffsetFetch naming just the partitions asked
//     for, however many ([restserver.CommittedLister]).
//   - Errors: unknown topic 404, record too large 413, a rebalance in
//     progress or a coordinator or leader moving 503 with Retry-After
//     ([restserver.ErrUnavailable]), as are brokers that cannot be reached
//     (a refused dial, or a request's deadline running out while the last
//     dial to a broker had failed), a commit by a member that lost the
//     partition 400.
//
// # Differences from the embedded broker
//
//   - A produce of several records over several partitions is not all or
//     none: Kafka has that only with transactions. Everything checkable is
//     checked before anything is sent; a broker refusing part of a batch is
//     an error saying how many records were written.
//   - Kafka-Max-Poll-Interval-Ms is not enforced (kgo heartbeats without a
//     poll deadline); the server's instance expiry closes idle instances.
//   - Kafka-Session-Timeout-Ms must lie within the brokers'
//     group.min/max.session.timeout.ms (6 s to 30 min on Apache Kafka);
//     outside it the first consume is a 400.
//   - Retention, topic and partition limits are the cluster's settings.
//   - Members are assigned with Kafka's eager range balancer, so a joining
//     instance's first consume returns with its share after one rebalance
//     round; an eager rebalance revokes every partition, so members resume
//     from the committed offsets (uncommitted positions are dropped). Other
//     members see the rebalance at their next heartbeat (at most a second).
//   - A partition assigned with a latest start and no committed offset has
//     that start committed when the member joins (or at its next consume,
//     for partitions gained later), so records produced after the join are
//     not skipped when the partition moves before any commit (Kafka would
//     start the new owner at latest again). /committed shows that offset,
//     and Kafka-Auto-Offset-Reset none then sees it as committed. An
//     instance with none commits no such start: its join is refused when a
//     partition it gets has no committed offset, or one past the end
//     offset or before the start offset listed at the join (kgo would reset it; Kafka with none fails
//     the fetch), and it leaves the group having committed nothing
//     ([restserver.CommittedSubscriber]).
package kafkabackend
