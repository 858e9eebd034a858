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
// never retried.
//
// A retried produce whose first response was lost may append its records
// twice: the REST API has no idempotent produce. The rpc layer deduplicates
// by rpc-id, so this is safe for kafkarpc traffic, but other consumers of the
// same topics must tolerate duplicates.
//
// Credentials are sent in the Authorization header only and are never
// logged.
package upstash
