// Package restserver serves the Upstash Kafka REST API over a [Backend], so
// code written for the Upstash SDKs (npm @upstash/kafka, plain HTTP clients
// such as PHP's) keeps working after Upstash shut its Kafka down: change the
// URL and the credentials, nothing else.
//
// Endpoints (all under the root, no version prefix; one trailing slash is
// tolerated):
//
//	GET       /produce/{topic}/{message}?key=   → one Metadata object
//	GET|POST  /produce/{topic}, /produce        → [Metadata] in request order (also for one object)
//	GET|POST  /webhook?topic=T[&user=&pass=]    → one Metadata object; raw body = value
//	GET       /consume/{group}/{instance}/{topic}?timeout=
//	GET|POST  /consume/{group}/{instance}       {"topic"|"topics", "timeout"[, "produce" (POST only), "commit"]}
//	GET|POST  /commit/{group}/{instance}        empty or [] = consumed positions; object or array = as given
//	GET|POST  /committed/{group}/{instance}     {topic,partition} or array → [{topic,partition,offset}]
//	POST|DELETE /delete-consumer/{group}/{instance}
//	GET|POST  /fetch                            single triple, topicPartitionOffsets, or both[, "produce" (POST only)]
//	GET       /topics, /consumers
//	GET|POST  /offsets/{earliest|latest|timestamp}
//
// The schema registry is not served.
//
// # Decisions (UPSTASH_REST.md §11)
//
// Authentication is HTTP Basic against the pairs given with
// [WithCredentials] and the users of [WithUsers] (the webhook also takes
// ?user=&pass=). With none configured, authentication is off and every
// request may do everything. Errors are always JSON
// {"error": "...", "status": N}: 400 malformed body or arguments, 401 missing
// or wrong credentials (with WWW-Authenticate), 404 unknown topic, consumer
// instance or route, 405 wrong method (with Allow), 413 a record over the
// message limit or a body over the body limit, 408 a body still arriving
// when [Server.Serve]'s read timeout passes (see [WithTimeouts], which also
// cuts off clients that trickle their headers or sit idle), 503 while
// shutting down or at the connection limit (with Retry-After), 5xx for
// backend faults (500 bodies do not carry the fault's text; the log does).
// 429 (with Retry-After) for a client address over the failed login limit,
// 403 for a request the user has no right to (see Permissions). The request's Content-Type is ignored: bodies are read as
// JSON. Committed offsets are stored exactly as given and mean the next
// offset to read. Timestamps are epoch milliseconds; /offsets/{ts} takes a
// value below 1e11 as seconds. Consume and fetch time out after 1000 ms by
// default; every timeout is clamped to [WithMaxTimeout].
//
// Consumer instances are made by the first consume naming them, configured
// once by its Kafka-* headers, split the partitions of their group with the
// other instances, expire after [WithInstanceExpiry] without requests, and
// end at once with /delete-consumer (404 for an unknown one). Instances
// exist only in the server that made them. A client that sends
// Kafka-Instance-Incarnation (an extension, see [IncarnationHeader]) marks
// a restart: a new token replaces the instance, which then reads from the
// group's committed offsets at once, and an old token is fenced (404).
//
// Auto-commit (Kafka-Enable-Auto-Commit, on by default) works as in a Kafka
// consumer: at the start of a consume, if Kafka-Auto-Commit-Interval ms
// (default 5000) have passed since the last auto-commit, the positions
// reached by the earlier consumes are committed; they are committed too when
// the instance is deleted, expires or the server closes.
// Kafka-Auto-Offset-Reset "none" answers 400 when the group has no committed
// offset for a partition the new instance starts with, or one past the
// partition's end or before its earliest retained offset (which earliest
// and latest reset, and Kafka with none refuses as OFFSET_OUT_OF_RANGE); the instance is not made, and nothing is
// committed or fixed as that partition's start (an instance with earliest
// still reads it from its first record).
//
// Liveness of an instance: its group member heartbeats by itself while the
// instance exists (Kafka-Session-Timeout-Ms is that member's session
// timeout, as for the Kafka client inside an Upstash REST server), so a
// client that consumes less often than its session timeout keeps its
// partitions and its commits count. A member that does not consume for its
// max poll interval (Kafka-Max-Poll-Interval-Ms, an extension of this
// server; default the backend's, 5 minutes) is dropped as stuck: its
// partitions go to the other instances, a commit then answers 400 saying
// so (never a silent Success), and the next consume rejoins. Any request
// naming the instance keeps it from expiring ([WithInstanceExpiry]):
// kafkarpc's REST transport, while its user is busy and sends no consume,
// sends GET /committed/{group}/{instance} with no body (a read of the
// offsets the instance owns) for that, until its max poll interval has
// passed without a consume.
//
// The default Kafka-Session-Timeout-Ms is 45000 (45 s, Kafka's own default
// since 3.0), not the 120 s Upstash documented. The session timeout bounds
// only how long a member whose heartbeats stopped keeps its partitions, and
// the member's heartbeats stop only when the server itself dies (with a
// Kafka backend, a crashed kafka-rest's members; on the embedded broker the
// members die with it): 45 s hands those partitions to the other members
// sooner, and is still far above the pauses a healthy server has. A crashed
// REST client is another matter: its instance lives on in this server and
// keeps its partitions until its max poll interval or idle expiry, minutes;
// a client that comes back with the same instance name and
// Kafka-Instance-Incarnation header (see [IncarnationHeader]) takes them
// back at once, which is what kafkarpc's REST transport does.
//
// A commit with the header Kafka-Commit-Fenced: true (an extension of this
// server, sent by kafkarpc's REST transport) is refused with 400 when an
// offset is below where the instance's current assignment of the partition
// began: it can only come from work done before the partition moved away
// and came back, and would move the group's offset backwards. Kafka refuses
// such commits by their generation, which the REST API does not carry.
//
// A consume with the header Kafka-Consume-Ack (an extension of this server,
// sent by kafkarpc's REST transport, see [AckHeader]) says which answer its
// client last read whole; the instance's last answer with records is kept
// until a consume acknowledges it, and a consume that does not gets those
// records again (in the partitions the instance still owns, at or after
// the group's committed offsets) before anything new. An answer cut off on
// its way is then not lost; without the header, as with the plain API, it
// is.
//
// A consume may carry records to produce (an extension of this server:
// Upstash SDKs never send it, and every consume answer says it is
// understood with [CarryHeader]): a "produce" field in the body, an array
// of messages as POST /produce takes them. They are produced first,
// through /produce's checks (the user's right to produce to each topic,
// the message limit, unknown topics, all or nothing where the backend is;
// the body limit is the same as /produce's; at most [MaxCarriedRecords]
// records, 413 beyond), before the instance is touched: a failure is
// answered as /produce would answer it and nothing is consumed. Then
// [ProducedHeader] carries their metadata, as /produce answers it, in
// headers sent at once, before anything waits (a join, another consume of
// the instance, the long poll); the records polled follow as the body. A consume that fails after that (the
// instance deleted or replaced during the wait) answers its error in the
// body of the 200 answer, in the usual {"error": "...", "status": N}
// shape. kafkarpc's REST transport uses it to send an rpc server's
// replies with its next consume (transport.CarryingPoller). Likewise a
// "commit" field, offsets as POST /commit takes them, is checked as
// /commit checks them (a bad one refuses the request before anything is
// done) and committed, fenced as with Kafka-Commit-Fenced: true, once the
// instance is joined, before the long poll; [CommittedHeader] carries the
// outcome, success or the error /commit would answer, and the consume goes
// on either way. (When the consume also carried records and must wait
// first, their answer goes at once and the commit is not done: no
// [CommittedHeader].)
//
// A fetch may carry records to produce the same way (every /fetch answer
// says so with [CarryHeader] too): a "produce" field in the fetch body,
// with the same checks, rights, limits ([MaxCarriedRecords]) and
// all-or-nothing, produced once the fetch itself is checked (its
// partitions, its timeout, the right to read them) and before anything is
// read, so a failure writes nothing and reads nothing, and a fetch sees
// the records it wrote. [ProducedHeader] carries their metadata, sent
// before the fetch waits for records (or with the answer, when records are
// there at once); the records fetched follow as the body, and an error
// after the headers went out is answered in the body, as for a consume. A
// fetch has no group: a "commit" field is refused with 400. kafkarpc's
// REST transport uses it to send an rpc client's request with the fetch
// that reads its reply (transport.CarryingPoller on a Tail's consumer).
//
// A committed offset past the end of its partition is stored, as Kafka
// stores it; the partition's next owner starts by its
// Kafka-Auto-Offset-Reset (earliest or latest) instead of waiting there, as
// Kafka's auto.offset.reset does; with none, its first consume is refused
// (400) until an offset within the partition is committed. Groups whose
// last instance has gone and that committed nothing are removed from the
// embedded broker.
//
// A consume naming a different set of topics than its instance reads
// re-subscribes it, as KafkaConsumer.subscribe() replaces a subscription: the
// instance commits its positions (if auto-commit is on), leaves the group
// and rejoins with the new topics, keeping the configuration it was made
// with. A re-subscribe the backend refuses (400 for
// Kafka-Auto-Offset-Reset none, 404 for a missing topic), or cannot serve
// now (503, to be retried), leaves the instance reading its old topics: it
// rejoins with them, from the positions committed as it left (without
// auto-commit, from the group's committed offsets, as after a rebalance;
// with none too, where a partition without a committed offset starts at
// the latest offset, as one a rebalance hands over). On the embedded
// broker, an instance without auto-commit that is alone in its group and
// has never committed leaves an empty group with no offsets, which the
// broker forgets, as Kafka forgets such a group: it rejoins by its reset
// policy, and with latest skips what was produced since it first joined
// (the Kafka backend commits each partition's start at the first join, so
// it resumes there). Commit, or keep auto-commit on.
//
// # Permissions
//
// Each [User] may produce to the topics of its Produce patterns (/produce,
// /webhook) and consume from those of its Consume patterns (/consume,
// /commit, /committed, /fetch, /offsets). A [TopicPattern] is a topic
// name exactly, "prefix*" for every topic starting with prefix, or "*".
// Admin grants every right, plus /consumers and /delete-consumer of any
// instance; a [WithCredentials] pair is an admin. /topics lists the
// topics a user may produce to or consume from (every topic for an
// admin). Each user without the admin right has its own namespace of
// consumer instance names (admins share one): another user's request
// naming g/i reaches that user's own g/i, never this one's, so no user can
// take or lock another's instance name; an admin's delete-consumer reaches
// every user's instance of the name. A user who may only consume cannot
// create a topic by consuming it (404). Consumer groups are not owned. Rights are checked after authentication and after the body is
// parsed, before anything is written, read or created: a produce batch
// with one forbidden topic writes nothing. A 403 is an ordinary JSON
// error {"error": "...", "status": 403}; the connection stays open.
// [ReadUsers] reads users from a file of JSON lines (kafka-rest --users).
// Users are fixed at New; the server reads them concurrently without
// locks.
//
// # Limits
//
// Each is an option with a documented default; a request over one gets a
// JSON error and the server stays up:
//
//	/fetch answer, all partitions   WithFetchMaxBytes           16 MiB (fetch.max.bytes); the first record always comes
//	/fetch answer, per partition    WithFetchMaxPartitionBytes  1 MiB (max.partition.fetch.bytes)
//	records per partition of /fetch WithFetchMaxRecords         500
//	partitions one /fetch names     WithFetchMaxPartitions      10000 (repeats merged) → 400
//	group and instance names        WithMaxNameLength           249 bytes → 400
//	connections held by Serve       WithMaxConnections          4096 (idle ones without credentials closed first; else 503 + Retry-After)
//	idle keep-alive connection      WithTimeouts (Idle)         30 s
//	record, request body            WithMaxMessageBytes, WithMaxBodyBytes  1 MiB, 16 MiB → 413
//	failed logins per address       WithFailedLoginLimit        60 a minute → 429 + Retry-After
//	Kafka-*-Ms config headers       fixed                       1..2147483647 ms (Kafka's int) → 400
//
// A waiting /fetch uses one waiter ([Backend].WaitAny) whatever the number of
// partitions it names. /consume answers are capped by the backend (see
// memory.WithFetchMaxBytes); topics, partitions, retention and the offsets
// retention of empty groups are the embedded broker's options (memory.New).
package restserver
