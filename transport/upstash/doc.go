// Package upstash is a kafkarpc transport that speaks the Upstash Kafka REST
// API: produce and consume over HTTP with Basic auth, as served by the
// project's own REST server (package restserver) or any wire-compatible one.
//
// [New] (or [FromEnv]) returns a [*Transport], which implements
// transport.Transport and transport.Tailer:
//
//   - Produce coalesces concurrent calls into one POST /produce: while one
//     request is in flight, later calls queue, and everything queued goes out
//     in the next request. A lone caller pays no added latency.
//   - Subscribe creates a consumer-group instance (POST /consume/{group}/{instance})
//     with auto-commit off; Poll long-polls it and Commit stores last offset + 1.
//   - Tail reads every partition of some topics from their ends without a
//     consumer group (POST /offsets/latest, then POST /fetch), so a reply
//     produced right after Tail returns is never lost to a late group join.
//   - A Subscribe's consumer implements transport.CarryingPoller: on the
//     project's REST server (which says so in every consume answer), the
//     records to produce go with the next consume, one HTTP exchange for
//     both; elsewhere it produces, then polls. See consumer PollCarrying.
//   - A Tail's consumer implements it too, over POST /fetch: with one topic,
//     once a /fetch answer said the server takes records with a fetch, the
//     records go with the fetch (an rpc client's request rides on the
//     fetch that reads its reply); elsewhere it produces, then polls. See
//     tailer PollCarrying.
//
// # Text only
//
// The REST API carries keys, values and header values as JSON strings. A
// Message's Value is sent as a string, so it must be valid UTF-8 text (JSON,
// for the rpc layer). Produce refuses invalid UTF-8 with an error wrapping
// transport.ErrInvalid instead of corrupting it.
//
// # Records share memory
//
// The records one Poll returns share memory: their values are slices of
// one buffer per server answer, and their headers of one array, so a record
// kept keeps its whole answer alive. Copy a Value to keep it long. As
// transport.Message says, treat Value and Headers as read-only.
//
// # Errors and retries
//
// Every non-2xx answer becomes an [*Error] carrying the HTTP status and the
// server's JSON "error" message; errors.Is maps it to the transport sentinels
// (404 unknown topic to transport.ErrUnknownTopic, 413 to
// transport.ErrMessageTooLarge, 400 to transport.ErrInvalid, ...). Answers
// 5xx and 429 and connection errors are retried with exponential backoff
// (see [WithBackoff]) within the caller's context; other 4xx answers are
// never retried. The first retry while the server is failing is logged as
// a warning ([WithLogger]) naming the request, the server's host and the
// error, once per outage rather than per retry (the retries themselves are
// logged at debug level), and an info line says when it answers again: when
// the route whose failure began the outage answers (an answer of another
// route, while that one still fails, does not end it), or any route once
// no attempt failed for Backoff's MaxElapsed.
// When the retries give up (the caller's deadline or the setup timeout
// comes first, or Backoff's MaxElapsed or MaxRetries), the error wraps
// transport.ErrUnavailable and the last attempt's error (an *Error for a
// 5xx or 429; a deadline also wraps context.DeadlineExceeded); 5xx and 429
// *Errors match transport.ErrUnavailable themselves. 4xx answers never do.
//
// A retried produce whose first response was lost may append its records
// twice: the REST API has no idempotent produce. The rpc layer deduplicates
// by rpc-id, so this is safe for kafkarpc traffic, but other consumers of the
// same topics must tolerate duplicates.
//
// Credentials are sent in the Authorization header only and are never
// logged. 401 and 403 answers match [ErrUnauthenticated] and
// [ErrPermissionDenied] and are never retried.
//
// # A server is not trusted
//
// Whatever answers at the REST URL may be another proxy, a misconfigured
// load balancer or a compromised host, so the client bounds what an answer
// can make it do:
//
//   - Redirects are refused ([ErrRedirect], naming the target): the
//     credentials never go to another origin.
//   - A topic claiming more partitions than [WithMaxPartitions] (default
//     10,000) is refused by Tail; requests are sized by what is read.
//   - Reads are capped: 256 MiB for a consume or fetch answer, 4 MiB for
//     GET /topics, 64 KiB plus 1 KiB per element asked for by a produce or
//     offsets request. Decoding a consume or fetch answer may allocate 4
//     bytes per byte read plus 1 MiB for its records and headers, and stops
//     when the caller's context ends.
//   - Records a consumer never asked for (other topics, partitions out of
//     range, negative offsets, below a Tail's position) are dropped and
//     counted in [Transport.Stats]; a produce answer inconsistent with what
//     was sent is an error.
//   - A deadline is reported as context.DeadlineExceeded, also when a
//     Retry-After lies past it; a 200 carrying {"error": ...} is an error.
//   - Tail and Subscribe as a whole are bounded by [WithSetupTimeout]
//     (default 30s), so rpc.NewClient cannot hang.
package upstash
