// Package rpc is request/reply RPC over Kafka topics: a Client sends a
// request record to a topic and waits for the reply record on its reply
// topic; a Server reads request topics in a consumer group, routes each
// record to a handler and produces the handler's result as the reply.
//
// The package talks to brokers only through package transport: the
// embedded broker (transport/memory) for tests and development, the Upstash
// Kafka REST API (transport/upstash) for services.
//
// # Calls
//
//   - [Client.Call] and the typed [Call] wait for the reply. The deadline
//     (the context's, [WithTimeout], or [WithCallTimeout]'s 30 s default)
//     travels with the request; a handler error comes back as an [*Error]
//     with its [Code].
//   - [Client.Send] is for long jobs: the completion notice goes to a
//     durable consumer group on the service's notice topic and is handled by
//     the [NoticeHandler] given to [Client.OnNotice], by whichever instance
//     reads it, so it survives a restart of the caller.
//   - [Client.Notify] asks for nothing back.
//   - [Progress] lets a handler report progress to its caller.
//
// # Serving
//
// Register routes on a [Server] with [Handle] (typed), [Server.HandleFunc],
// [Server.HandleLegacy] (records without rpc-* headers, routed by key and
// topic as the Laravel article's PHP router did) and [Server.HandleUnhandled],
// then call [Server.Serve]. Delivery is at-least-once: a request's offset is
// committed only after its reply was produced, never past a request still in
// flight; a dedup window keeps redelivered requests from running twice;
// records that cannot be served go to "<topic>.dlq" (see [DeadLetterSuffix]).
//
// # Concurrency
//
// Client and Server are safe for concurrent use. A Server runs up to
// [WithConcurrency] handlers at once (default 16). Close and Serve's return
// are idempotent and leave no goroutines behind, but for a handler that
// ignores its canceled context: Serve abandons it after the drain timeout
// and a grace, and its goroutine ends when it returns.
//
// # Wire format
//
// One Kafka record per message. The value is the JSON payload, untouched;
// the envelope is in record headers (see [HeaderVersion] and the other
// Header constants), protocol version [ProtocolVersion].
package rpc
