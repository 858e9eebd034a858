// Package otelrpc makes OpenTelemetry traces and metrics of the calls and
// handled requests of package rpc. It is a separate package so that rpc
// keeps its small dependency set: import it only where telemetry is wanted.
//
//	obs, err := otelrpc.New() // the global TracerProvider and MeterProvider
//	c, err := rpc.NewClient(t, rpc.WithObserver(obs))
//	s, err := rpc.NewServer(t, rpc.WithObserver(obs))
//
// # Traces
//
// Spans follow the OpenTelemetry messaging semantic conventions
// (messaging.system "kafka", messaging.operation.type, messaging.destination.name,
// messaging.message.id, messaging.message.conversation_id, ...). They are
// linked through the W3C traceparent record header, which rpc already
// carries from a request to its replies:
//
//   - "send TOPIC" on the client, for each Call and Send (kind Client: a
//     reply is asked for; Call's span lasts until it comes, Send's until the
//     request is written) and Notify (kind Producer). Its context is written
//     into the request's traceparent header, replacing one given with
//     WithHeader.
//   - "process TOPIC" on the server (kind Consumer), a child of the caller's
//     span, around the handler and its retries. The handler's context holds
//     it, so spans the handler starts are its children. The request's replies
//     and progress notices carry this span's traceparent.
//   - "receive REPLYTOPIC" on the client (kind Consumer), a child of the
//     server's span and linked to the call's span, when Call gets its reply.
//
// So one trace crosses client, server and reply, whichever process each
// runs in.
//
// # Metrics
//
// Instruments are named kafkarpc.* (the messaging conventions have no
// names for a round trip, late replies or dead letters):
//
//	kafkarpc.client.call.duration     histogram, s   messaging.destination.name, kafkarpc.kind, kafkarpc.code
//	kafkarpc.server.request.duration  histogram, s   messaging.destination.name, kafkarpc.code
//	kafkarpc.server.requests          counter        messaging.destination.name, kafkarpc.code
//	kafkarpc.server.requests.in_flight up-down counter messaging.destination.name
//	kafkarpc.dead_letters             counter        messaging.destination.name, kafkarpc.dlq.reason
//	kafkarpc.client.late_replies      counter        messaging.destination.name (the reply topic)
//	kafkarpc.retries                  counter        messaging.destination.name, kafkarpc.retry.kind ("handler" or "resend")
//
// kafkarpc.kind is the rpc-kind of the request ("request" for Call and
// Send, "notify" for Notify); kafkarpc.code is the rpc.Code of the outcome
// ("ok" on success).
package otelrpc
