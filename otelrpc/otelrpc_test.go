package otelrpc_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/otelrpc"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = rpc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// rig is an embedded broker, an Observer on an in-memory span exporter and
// a manual metric reader, and a server and client that use it.
type rig struct {
	b      *memory.Broker
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
	obs    *otelrpc.Observer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := otelrpc.New(otelrpc.WithTracerProvider(tp), otelrpc.WithMeterProvider(mp))
	require.NoError(t, err)
	return &rig{b: b, spans: spans, reader: reader, obs: obs}
}

func (r *rig) server(t *testing.T, opts ...rpc.ServerOption) *rpc.Server {
	t.Helper()
	s, err := rpc.NewServer(r.b, append([]rpc.ServerOption{rpc.WithName("svc"), rpc.WithObserver(r.obs), quiet}, opts...)...)
	require.NoError(t, err)
	return s
}

func (r *rig) client(t *testing.T, opts ...rpc.ClientOption) *rpc.Client {
	t.Helper()
	c, err := rpc.NewClient(r.b, append([]rpc.ClientOption{rpc.WithName("cli"), rpc.WithObserver(r.obs), quiet}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads the metrics, by instrument name.
func (r *rig) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum is the int64 sum's data point whose attributes include want, and
// whether there is one.
func sum(t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) int64 {
	t.Helper()
	if data == nil {
		return 0 // nothing recorded yet
	}
	s, ok := data.(metricdata.Sum[int64])
	require.True(t, ok, "not an int64 sum: %T", data)
	var total int64
	for _, dp := range s.DataPoints {
		if hasAll(dp.Attributes, want) {
			total += dp.Value
		}
	}
	return total
}

// histCount is the number of values recorded by the histogram's points
// whose attributes include want.
func histCount(t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) uint64 {
	t.Helper()
	h, ok := data.(metricdata.Histogram[float64])
	require.True(t, ok, "not a float64 histogram: %T", data)
	var n uint64
	for _, dp := range h.DataPoints {
		if hasAll(dp.Attributes, want) {
			n += dp.Count
		}
	}
	return n
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	require.Failf(t, "no span", "no span named %q in %d spans", name, len(spans))
	return tracetest.SpanStub{}
}

func attr(s tracetest.SpanStub, k attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

var topicAttr = attribute.String("messaging.destination.name", "reports")

// TestTraceCrossesClientServerReply makes one Call and checks that its
// client span, the server's span and the reply's span are one trace, each
// the parent of the next, with the messaging attributes; and the call,
// request and in-flight metrics.
func TestTraceCrossesClientServerReply(t *testing.T) {
	r := newRig(t)
	s := r.server(t)
	var handlerSpan trace.SpanContext
	rpc.Handle(s, "reports", func(ctx context.Context, in map[string]int) (map[string]int, error) {
		handlerSpan = trace.SpanContextFromContext(ctx)
		return map[string]int{"rows": in["n"] * 2}, nil
	})
	rpctest.Serve(t, s)
	c := r.client(t)

	reply, err := c.Call(context.Background(), "reports", map[string]int{"n": 21}, rpc.WithMethod("monthly"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"rows":42}`, string(reply.Payload()))

	spans := r.spans.GetSpans()
	send := spanNamed(t, spans, "send reports")
	process := spanNamed(t, spans, "process reports")
	receive := spanNamed(t, spans, "receive cli.replies")

	tid := send.SpanContext.TraceID()
	assert.Equal(t, tid, process.SpanContext.TraceID(), "server span in the caller's trace")
	assert.Equal(t, tid, receive.SpanContext.TraceID(), "reply span in the caller's trace")
	assert.False(t, send.Parent.IsValid(), "the call span is the root here")
	assert.Equal(t, send.SpanContext.SpanID(), process.Parent.SpanID(), "server span is the call span's child")
	assert.True(t, process.Parent.IsRemote())
	assert.Equal(t, process.SpanContext.SpanID(), receive.Parent.SpanID(), "reply span is the server span's child")
	require.Len(t, receive.Links, 1)
	assert.Equal(t, send.SpanContext.SpanID(), receive.Links[0].SpanContext.SpanID(), "reply span links the call span")
	assert.Equal(t, process.SpanContext, handlerSpan, "the handler's context holds the server span")

	assert.Equal(t, trace.SpanKindClient, send.SpanKind)
	assert.Equal(t, trace.SpanKindConsumer, process.SpanKind)
	assert.Equal(t, trace.SpanKindConsumer, receive.SpanKind)
	assert.Equal(t, "kafka", attr(send, "messaging.system"))
	assert.Equal(t, "send", attr(send, "messaging.operation.type"))
	assert.Equal(t, "process", attr(process, "messaging.operation.type"))
	assert.Equal(t, "receive", attr(receive, "messaging.operation.type"))
	assert.Equal(t, "reports", attr(process, "messaging.destination.name"))
	assert.Equal(t, "monthly", attr(process, "kafkarpc.method"))
	assert.Equal(t, attr(send, "messaging.message.id"), attr(process, "messaging.message.id"))
	assert.Equal(t, attr(send, "messaging.message.id"), attr(receive, "messaging.message.conversation_id"))
	assert.Equal(t, "ok", attr(send, "kafkarpc.code"))

	tp, _ := reply.Header(rpc.HeaderTraceparent)
	assert.Contains(t, tp, process.SpanContext.SpanID().String(), "the reply record carries the server span")

	m := r.collect(t)
	assert.EqualValues(t, 1, histCount(t, m["kafkarpc.client.call.duration"], topicAttr, otelrpc.KeyCode.String("ok"), otelrpc.KeyKind.String("request")))
	assert.EqualValues(t, 1, histCount(t, m["kafkarpc.server.request.duration"], topicAttr, otelrpc.KeyCode.String("ok")))
	assert.EqualValues(t, 1, sum(t, m["kafkarpc.server.requests"], topicAttr, otelrpc.KeyCode.String("ok")))
	assert.EqualValues(t, 0, sum(t, m["kafkarpc.server.requests.in_flight"], topicAttr))
}

// TestParentSpanFromCaller checks that a Call made inside a span is its
// child, and that a traceparent given with WithHeader is replaced, not
// sent twice.
func TestParentSpanFromCaller(t *testing.T) {
	r := newRig(t)
	s := r.server(t)
	headers := make(chan int, 1)
	rpc.Handle(s, "reports", func(ctx context.Context, in struct{}) (struct{}, error) {
		req, _ := rpc.RequestFrom(ctx)
		n := 0
		for _, h := range req.Headers {
			if h.Key == rpc.HeaderTraceparent {
				n++
			}
		}
		headers <- n
		return struct{}{}, nil
	})
	rpctest.Serve(t, s)
	c := r.client(t)

	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans))
	defer tp.Shutdown(context.Background())
	ctx, parent := tp.Tracer("test").Start(context.Background(), "web request")
	_, err := c.Call(ctx, "reports", struct{}{}, rpc.WithHeader(rpc.HeaderTraceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
	require.NoError(t, err)
	parent.End()
	assert.Equal(t, 1, <-headers)

	send := spanNamed(t, r.spans.GetSpans(), "send reports")
	process := spanNamed(t, r.spans.GetSpans(), "process reports")
	assert.Equal(t, parent.SpanContext().SpanID(), send.Parent.SpanID())
	assert.Equal(t, parent.SpanContext().TraceID(), process.SpanContext.TraceID())
}

// TestErrorsRetriesDeadLetters checks the error code on spans and metrics,
// handler retries, and dead letters with their reason.
func TestErrorsRetriesDeadLetters(t *testing.T) {
	r := newRig(t)
	s := r.server(t, rpc.WithRetry(3, time.Millisecond))
	rpc.Handle(s, "reports", func(ctx context.Context, in struct{ N int }) (struct{}, error) {
		switch in.N {
		case 1:
			return struct{}{}, rpc.Errorf(rpc.CodeNotFound, "no report %d", in.N)
		case 2:
			return struct{}{}, rpc.Retryable(rpc.Errorf(rpc.CodeUnavailable, "database down"))
		}
		return struct{}{}, nil
	})
	rpctest.Serve(t, s)
	c := r.client(t)
	ctx := context.Background()

	_, err := c.Call(ctx, "reports", struct{ N int }{1})
	require.Equal(t, rpc.CodeNotFound, rpc.CodeOf(err))
	_, err = c.Call(ctx, "reports", struct{ N int }{2})
	require.Equal(t, rpc.CodeUnavailable, rpc.CodeOf(err))
	_, err = c.Call(ctx, "reports", []byte(`"not an object"`))
	require.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err))
	require.NoError(t, c.Notify(ctx, "reports", struct{ N int }{0}))

	m := r.collect(t)
	assert.EqualValues(t, 1, histCount(t, m["kafkarpc.client.call.duration"], topicAttr, otelrpc.KeyCode.String("not_found")))
	assert.EqualValues(t, 1, histCount(t, m["kafkarpc.client.call.duration"], topicAttr, otelrpc.KeyKind.String("notify"), otelrpc.KeyCode.String("ok")))
	assert.EqualValues(t, 1, sum(t, m["kafkarpc.server.requests"], topicAttr, otelrpc.KeyCode.String("not_found")))
	assert.EqualValues(t, 2, sum(t, m["kafkarpc.retries"], topicAttr, otelrpc.KeyRetryKind.String("handler")), "3 attempts: 2 retries")
	assert.EqualValues(t, 1, sum(t, m["kafkarpc.dead_letters"], topicAttr, otelrpc.KeyDLQReason.String("retries_exhausted")))
	assert.EqualValues(t, 1, sum(t, m["kafkarpc.dead_letters"], topicAttr, otelrpc.KeyDLQReason.String("undecodable")))

	for _, sp := range r.spans.GetSpans() {
		if sp.Name == "send reports" && attr(sp, "kafkarpc.kind") == "notify" {
			assert.Equal(t, trace.SpanKindProducer, sp.SpanKind)
			assert.Equal(t, "ok", attr(sp, "kafkarpc.code"))
		}
	}
	var failed int
	for _, sp := range r.spans.GetSpans() {
		if sp.Name == "process reports" && attr(sp, "kafkarpc.code") == "not_found" {
			failed++
			assert.Equal(t, "Error", sp.Status.Code.String())
		}
	}
	assert.Equal(t, 1, failed)
}

// TestLateRepliesAndResends checks the late-reply and resend counters: a
// handler held past its caller's timeout answers late; a client with
// WithResend sends again while the handler is held.
func TestLateRepliesAndResends(t *testing.T) {
	r := newRig(t)
	s := r.server(t)
	release := make(chan struct{})
	rpc.Handle(s, "reports", func(ctx context.Context, in struct{}) (struct{}, error) {
		<-release // past the caller's deadline, whatever the context says
		return struct{}{}, nil
	})
	rpctest.Serve(t, s)
	c := r.client(t, rpc.WithResend(20*time.Millisecond))

	_, err := c.Call(context.Background(), "reports", struct{}{}, rpc.WithTimeout(150*time.Millisecond))
	require.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(err))
	close(release)

	// Each copy of the request the server saw after it finished is answered
	// again from its dedup window: one late reply or more. The counters
	// must match the client's own, once they settle.
	var late, resent int64
	var st rpc.ClientStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st = c.Stats()
		m := r.collect(t)
		late = sum(t, m["kafkarpc.client.late_replies"], attribute.String("messaging.destination.name", "cli.replies"))
		resent = sum(t, m["kafkarpc.retries"], topicAttr, otelrpc.KeyRetryKind.String("resend"))
		if st.Late > 0 && late == st.Late && resent == st.Resent {
			break
		}
	}
	require.Positive(t, st.Late)
	require.Equal(t, st.Late, late, "late replies counted as the client counts them")
	require.Equal(t, st.Resent, resent, "resends counted as the client counts them")
	assert.Positive(t, resent)
	m := r.collect(t)
	assert.EqualValues(t, 1, histCount(t, m["kafkarpc.client.call.duration"], topicAttr, otelrpc.KeyCode.String("deadline_exceeded")))
}

// TestNilObserverIsNone checks that WithObserver(nil) means no observer.
func TestNilObserverIsNone(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() }) // after the server and client stop
	c, err := rpc.NewClient(b, rpc.WithName("cli"), rpc.WithObserver(nil), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := rpc.NewServer(b, rpc.WithName("svc"), rpc.WithObserver(nil), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "reports", func(ctx context.Context, in struct{}) (struct{}, error) { return in, nil })
	rpctest.Serve(t, s)
	_, err = c.Call(context.Background(), "reports", struct{}{})
	require.NoError(t, err)
	require.NoError(t, c.Notify(context.Background(), "reports", struct{}{}))
}
