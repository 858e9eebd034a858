package otelrpc

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// instrumentationName names the tracer and meter.
const instrumentationName = "github.com/kafkarpc/kafkarpc/otelrpc"

// Attribute keys of this package's own (not in the semantic conventions).
const (
	KeyCode      = attribute.Key("kafkarpc.code")
	KeyKind      = attribute.Key("kafkarpc.kind")
	KeyMethod    = attribute.Key("kafkarpc.method")
	KeyDLQReason = attribute.Key("kafkarpc.dlq.reason")
	KeyRetryKind = attribute.Key("kafkarpc.retry.kind")
)

// Observer is an rpc.Observer that makes spans and metrics. Give the same
// one to any number of Clients and Servers. It is safe for concurrent use.
type Observer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	m      instruments
}

var _ rpc.Observer = (*Observer)(nil)

// New returns an Observer. Its instruments are created here, and an
// error creating them is returned.
func New(opts ...Option) (*Observer, error) {
	var cfg config
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	m, err := newInstruments(cfg.mp.Meter(instrumentationName))
	if err != nil {
		return nil, err
	}
	return &Observer{
		tracer: cfg.tp.Tracer(instrumentationName),
		// The header on the wire is traceparent (rpc.HeaderTraceparent),
		// whatever the process's global propagator: W3C trace context.
		prop: propagation.TraceContext{},
		m:    m,
	}, nil
}

// CallStarted starts the "send TOPIC" span of a Call, Send or Notify and
// writes its context into m's traceparent header. See rpc.Observer.
func (o *Observer) CallStarted(ctx context.Context, m *transport.Message) func(*rpc.Reply, error) {
	kind, _ := m.Header(rpc.HeaderKind)
	id, _ := m.Header(rpc.HeaderID)
	method, _ := m.Header(rpc.HeaderMethod)
	spanKind := trace.SpanKindProducer
	if replyTo, _ := m.Header(rpc.HeaderReplyTo); kind == string(rpc.KindRequest) && replyTo != "" {
		spanKind = trace.SpanKindClient
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("send"),
		semconv.MessagingDestinationName(m.Topic),
		semconv.MessagingMessageID(id),
		KeyKind.String(kind),
	}
	if method != "" {
		attrs = append(attrs, KeyMethod.String(method))
	}
	if m.Key != "" {
		attrs = append(attrs, semconv.MessagingKafkaMessageKey(m.Key))
	}
	ctx, span := o.tracer.Start(ctx, "send "+m.Topic, trace.WithSpanKind(spanKind), trace.WithAttributes(attrs...))
	o.prop.Inject(ctx, headerCarrier{&m.Headers})
	start := time.Now()
	topic := m.Topic
	return func(r *rpc.Reply, err error) {
		code := codeOf(err)
		o.m.callDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(
			semconv.MessagingDestinationName(topic), KeyKind.String(kind), KeyCode.String(code)))
		if r != nil {
			o.replySpan(ctx, span, r)
		}
		endSpan(span, code, err)
	}
}

// replySpan records the arrival of Call's reply r as a "receive" span,
// child of the server's span (from the reply's traceparent) and linked to
// the call's.
func (o *Observer) replySpan(ctx context.Context, call trace.Span, r *rpc.Reply) {
	parent := o.prop.Extract(ctx, headerCarrier{&r.Headers})
	if !trace.SpanContextFromContext(parent).IsValid() {
		parent = ctx
	}
	_, span := o.tracer.Start(parent, "receive "+r.Topic,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: call.SpanContext()}),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeReceive,
			semconv.MessagingOperationName("receive"),
			semconv.MessagingDestinationName(r.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(r.Partition))),
			semconv.MessagingKafkaOffset(int(r.Offset)),
			semconv.MessagingMessageID(r.ID),
			semconv.MessagingMessageConversationID(r.CorrelationID),
		))
	span.End()
}

// HandleStarted starts the "process TOPIC" span of a handled request, a
// child of the caller's span when the request carries a traceparent, and
// returns its traceparent for the replies. See rpc.Observer.
func (o *Observer) HandleStarted(ctx context.Context, r *rpc.Request) (context.Context, string, func(error)) {
	ctx = o.prop.Extract(ctx, headerCarrier{&r.Headers})
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(r.Topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(int(r.Partition))),
		semconv.MessagingKafkaOffset(int(r.Offset)),
	}
	if r.ID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(r.ID))
	}
	if r.Method != "" {
		attrs = append(attrs, KeyMethod.String(r.Method))
	}
	if r.Key != "" {
		attrs = append(attrs, semconv.MessagingKafkaMessageKey(r.Key))
	}
	ctx, span := o.tracer.Start(ctx, "process "+r.Topic, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	tc := propagation.MapCarrier{}
	o.prop.Inject(ctx, tc)
	topic := semconv.MessagingDestinationName(r.Topic)
	o.m.inFlight.Add(ctx, 1, metric.WithAttributes(topic))
	start := time.Now()
	return ctx, tc[rpc.HeaderTraceparent], func(err error) {
		code := codeOf(err)
		attrs := metric.WithAttributes(topic, KeyCode.String(code))
		o.m.inFlight.Add(ctx, -1, metric.WithAttributes(topic))
		o.m.requests.Add(ctx, 1, attrs)
		o.m.requestDuration.Record(ctx, time.Since(start).Seconds(), attrs)
		endSpan(span, code, err)
	}
}

// Counted adds the event to its counter. See rpc.Observer.
func (o *Observer) Counted(e rpc.Event) {
	ctx := context.Background()
	topic := semconv.MessagingDestinationName(e.Topic)
	switch e.Kind {
	case rpc.EventLateReply:
		o.m.lateReplies.Add(ctx, 1, metric.WithAttributes(topic))
	case rpc.EventResend:
		o.m.retries.Add(ctx, 1, metric.WithAttributes(topic, KeyRetryKind.String("resend")))
	case rpc.EventRetry:
		o.m.retries.Add(ctx, 1, metric.WithAttributes(topic, KeyRetryKind.String("handler")))
	case rpc.EventDeadLetter:
		o.m.deadLetters.Add(ctx, 1, metric.WithAttributes(topic, KeyDLQReason.String(e.Reason)))
	}
}

// codeOf is the kafkarpc.code of an outcome: "ok" for success, else the
// name of err's rpc.Code.
func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	return rpc.CodeOf(err).String()
}

// endSpan ends span with the outcome's status.
func endSpan(span trace.Span, code string, err error) {
	span.SetAttributes(KeyCode.String(code))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, code)
	}
	span.End()
}

// headerCarrier reads and writes record headers for a propagator. Set
// replaces a header of the same key, so a traceparent given with
// rpc.WithHeader is replaced rather than sent twice.
type headerCarrier struct{ hs *[]transport.Header }

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.hs {
		if h.Key == key {
			return h.Value
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for i := range *c.hs {
		if (*c.hs)[i].Key == key {
			(*c.hs)[i].Value = value
			return
		}
	}
	*c.hs = append(*c.hs, transport.Header{Key: key, Value: value})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.hs))
	for i, h := range *c.hs {
		keys[i] = h.Key
	}
	return keys
}
