package otelrpc

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// instruments are the Observer's metrics; see the package doc.
type instruments struct {
	callDuration    metric.Float64Histogram
	requestDuration metric.Float64Histogram
	requests        metric.Int64Counter
	inFlight        metric.Int64UpDownCounter
	deadLetters     metric.Int64Counter
	lateReplies     metric.Int64Counter
	retries         metric.Int64Counter
}

// durationBuckets are the histogram bounds in seconds, 1ms to 60s: a call
// spans a broker round trip or two plus the handler.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newInstruments(m metric.Meter) (instruments, error) {
	var in instruments
	var err, e error
	in.callDuration, e = m.Float64Histogram("kafkarpc.client.call.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of Call (until the reply), Send and Notify (until written), by topic, kind and code."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	err = errors.Join(err, e)
	in.requestDuration, e = m.Float64Histogram("kafkarpc.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of handling a request, retries included, by topic and code."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	err = errors.Join(err, e)
	in.requests, e = m.Int64Counter("kafkarpc.server.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests handled, by topic and code."))
	err = errors.Join(err, e)
	in.inFlight, e = m.Int64UpDownCounter("kafkarpc.server.requests.in_flight", metric.WithUnit("{request}"),
		metric.WithDescription("Requests whose handler is running, by topic."))
	err = errors.Join(err, e)
	in.deadLetters, e = m.Int64Counter("kafkarpc.dead_letters", metric.WithUnit("{record}"),
		metric.WithDescription("Records written to a dead-letter topic, by original topic and reason."))
	err = errors.Join(err, e)
	in.lateReplies, e = m.Int64Counter("kafkarpc.client.late_replies", metric.WithUnit("{reply}"),
		metric.WithDescription("Replies that arrived after their call gave up, by reply topic."))
	err = errors.Join(err, e)
	in.retries, e = m.Int64Counter("kafkarpc.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Handler runs after a Retryable error (kind handler) and requests resent by WithResend (kind resend), by topic."))
	err = errors.Join(err, e)
	if err != nil {
		return in, errors.Join(errors.New("otelrpc: creating instruments"), err)
	}
	return in, nil
}
