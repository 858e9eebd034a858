package rpc

import (
	"context"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Observer is told what a Client or Server does, for metrics and traces:
// package otelrpc implements one with OpenTelemetry. Give it with
// WithObserver.
//
// Its methods are called from the goroutines doing the work (callers of
// Call, Send and Notify, the reply reader, the server's workers), so they
// must be safe for concurrent use and must not block. Without an Observer
// (the default) each hook costs a nil check and allocates nothing.
type Observer interface {
	// CallStarted is called by Call, Send and Notify with the caller's
	// context and the request record m, built and not yet produced. It may
	// add or replace headers of m, such as traceparent (headers starting
	// with "rpc-" must be left alone). It returns the function called once
	// when the call ends: for Call with its reply or its error, for Send
	// and Notify once the record is written (reply nil) or could not be. A
	// call refused before its record is built (bad options, a request that
	// does not encode, a closed client) is not observed.
	CallStarted(ctx context.Context, m *transport.Message) (done func(r *Reply, err error))

	// HandleStarted is called before the handler of request r runs, once
	// per record whatever its retries, with the handler's context. It
	// returns the context the handler runs with (derived from ctx), the
	// traceparent that the request's replies and progress notices carry
	// instead of the request's own ("" keeps the request's), and the
	// function called once with the handler's final error (nil on success)
	// when the handler is done. Records that reach no handler (malformed,
	// expired, duplicates, no route) are not observed here; those
	// dead-lettered are counted by Counted.
	HandleStarted(ctx context.Context, r *Request) (hctx context.Context, traceparent string, done func(err error))

	// Counted reports one event of a kind in EventKind.
	Counted(e Event)
}

// EventKind says what an Event counts.
type EventKind int

const (
	// EventLateReply is a reply that arrived after its call gave up.
	// Event.Topic is the reply topic.
	EventLateReply EventKind = iota + 1
	// EventResend is a request sent again by WithResend. Event.Topic is
	// the request topic.
	EventResend
	// EventRetry is a handler run again after a Retryable error
	// (WithRetry). Event.Topic is the request topic.
	EventRetry
	// EventDeadLetter is a record written to its topic's dead-letter
	// topic. Event.Topic is the record's own topic and Event.Reason the
	// dlq-reason header.
	EventDeadLetter
)

// String returns the event kind's name: late_reply, resend, retry or
// dead_letter.
func (k EventKind) String() string {
	switch k {
	case EventLateReply:
		return "late_reply"
	case EventResend:
		return "resend"
	case EventRetry:
		return "retry"
	case EventDeadLetter:
		return "dead_letter"
	}
	return "unknown"
}

// Event is one counted event, passed by value so that reporting it
// allocates nothing.
type Event struct {
	Kind   EventKind
	Topic  string
	Reason string // EventDeadLetter only
}

type observerOption struct{ o Observer }

func (o observerOption) applyClient(c *clientConfig) { c.observer = o.o }
func (o observerOption) applyServer(c *serverConfig) { c.observer = o.o }

// WithObserver sets the Observer told about every call (on a Client) or
// handled request (on a Server). Default none; nil means none.
func WithObserver(o Observer) Option { return observerOption{o} }
