// Package kafka connects kafkarpc to an Apache Kafka cluster (or any
// Kafka-protocol broker: Redpanda, MSK, Confluent Cloud) with franz-go.
//
// [New] (or [FromEnv], which reads KAFKA_BROKERS and the optional
// KAFKA_SASL_* and KAFKA_TLS_* variables) returns a [Transport]: a
// transport.Transport and transport.Tailer. It holds one franz-go client for
// producing and admin requests, plus one per Consumer. Config,
// ConfigFromEnv and Config.ClientOpts describe how to reach a cluster
// (seed brokers, SASL PLAIN or SCRAM, TLS); they are shared with
// kafka-rest's Kafka backend.
//
// # Producing
//
// Records are sent at once (linger 0) by the idempotent producer with
// acks=all. The transport picks each partition itself: a keyed record goes
// to toPositive(murmur2(key)) % partitions, as Kafka's Java client, franz-go
// and the embedded broker place it; an empty key is unkeyed and keyless
// records go round-robin; ManualPartition is honoured. Topic metadata is
// read once and cached for 10 s, so a missing topic fails at once with
// transport.ErrUnknownTopic (franz-go alone would retry its metadata
// several times), and a manual partition out of range with ErrInvalid,
// before anything is sent.
//
// A context deadline bounds Produce, not the request on the wire. The
// idempotent producer never gives up on a request it has sent (doing so
// would let a retry write the records twice), so Produce returns at the
// deadline with an error wrapping ctx.Err() and transport.ErrOutcomeUnknown
// while the producer finishes the request in the background, exactly once.
// Records not yet sent when ctx ends are not sent.
//
// # Where Kafka differs from the embedded broker
//
//   - All or nothing: every record of one Produce is checked first, but
//     records to several partitions are separate Kafka batches, and a broker
//     error can write some and not others. The embedded broker appends all
//     or none.
//   - Auto-creation: off by default (AutoCreateTopics turns it on, with the
//     partitions given). The embedded broker creates topics on first use.
//   - Rebalances take network round trips: a joining member gets its
//     partitions in a second cooperative-sticky round, after their old owner
//     revoked them. Subscribe waits for that (bounded by SetupTimeout) so
//     members subscribed one after another share the partitions at once, as
//     on the embedded broker. Apache Kafka also delays the first join of an
//     empty group by group.initial.rebalance.delay.ms (3 s); kfake does not.
//   - Start latest: Kafka resolves "latest" when a partition is assigned,
//     which could skip records produced between Subscribe and the join. The
//     transport lists the end offsets in Subscribe and starts uncommitted
//     partitions there. A later member of the same group in another process
//     takes its own end offsets for partitions still without a commit.
//   - Max poll interval: franz-go heartbeats independently of polling and
//     has no max.poll.interval. The transport enforces
//     Subscription.MaxPollInterval itself: a member that does not poll for
//     that long has its partitions revoked (OnRevoked), leaves the group, and
//     joins again at its next Poll.
//   - Commits are fenced by generation: Commit sends the member's own
//     generation and member id, so a member that lost its partitions cannot
//     overwrite a newer owner's offsets; the transport also refuses partitions
//     not in its current assignment (ErrNotAssigned), because Kafka's classic
//     protocol accepts any partition under a valid generation. A rebalance
//     that keeps the partitions makes Commit retry with the new generation.
//   - Static members (Subscription.Instance, group.instance.id) do not leave
//     the group when their client closes. Close removes the instance with an
//     explicit LeaveGroup, so its partitions move at once rather than after
//     the session timeout. A replaced instance learns of it at its next
//     heartbeat (HeartbeatInterval, default 1 s) or its next commit (the
//     broker answers FENCED_INSTANCE_ID; rpc commits every 100 ms while
//     work completes), whichever comes first: its Poll then fails with
//     ErrFenced and its client stops, so it does not fence the new one back
//     nor keep dispatching what the new one reads. Its Close leaves with
//     its member id as well, so it cannot evict the new member. The new
//     instance's Poll returns no records for one heartbeat interval after
//     its first assignment (the HeartbeatInterval option, not lowered by a
//     short session timeout; the group's members must share the option, or
//     a predecessor with a longer one may still dispatch when the hold
//     ends), so that the two never dispatch the same records: what the old
//     one runs after the replacement is only what it had started before
//     learning of it. A static member that starts with no predecessor pays
//     the same wait once, and again after a rejoin (MaxPollInterval).
//   - Session timeouts must lie within the brokers' group.min/max
//     .session.timeout.ms (6 s to 30 min by default on Apache Kafka).
//   - A group session that ends (session expired, coordinator lost) loses
//     the member's partitions: OnRevoked is called, nothing is committed for
//     them, and franz-go rejoins by itself; Poll reports no error for it.
//   - OnRevoked runs on franz-go's group goroutine while the consumer's lock
//     is held: it must return quickly and must not call the Consumer.
//   - Rebalance and in-flight handlers: when a partition moves, the old
//     owner's OnRevoked stops new work, but handlers already running finish
//     and only then write their dedup markers; the new owner may read the
//     same requests first and run them again. At most the old owner's
//     in-flight requests are affected (TestGuaranteesUnderBrokerFaultsWithRebalance
//     measures it). On the embedded broker a rebalance is instantaneous.
//   - Leader or coordinator moves make the client reload metadata; the
//     transport lowers franz-go's 5 s floor between reloads to 250 ms.
//   - Wrong SASL credentials fail New with transport.ErrUnauthenticated
//     (Apache Kafka answers SASL_AUTHENTICATION_FAILED); the password is in
//     no error and no log line. kfake instead drops the connection, which
//     shows as an unreachable broker.
//
// # Tail
//
// Tail reads every partition of its topics from their exact end offsets,
// listed (kadm ListEndOffsets) before it returns, with a client of its own
// and no group, so the reply to a call made at once is never missed.
// Partitions added to its topics later are looked for about once a second
// while it polls and read from their start.
package kafka
