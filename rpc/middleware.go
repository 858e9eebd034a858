package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// HandlerFunc handles one request. The result is encoded as the reply's
// JSON payload; an error is sent back as an *Error (see NewError). For a
// notify or legacy record, the result is discarded.
type HandlerFunc func(ctx context.Context, r *Request) (any, error)

// Middleware wraps a handler. The chain is built once, when a route is
// registered; see WithMiddleware.
type Middleware func(HandlerFunc) HandlerFunc

// recoverHandler turns a panic in h into an internal error, logged with its
// stack, so that one bad request cannot take the server down.
func recoverHandler(log *slog.Logger, h HandlerFunc) HandlerFunc {
	return func(ctx context.Context, r *Request) (res any, err error) {
		defer func() {
			if p := recover(); p != nil {
				buf := make([]byte, 8<<10)
				buf = buf[:runtime.Stack(buf, false)]
				log.Error("rpc: handler panicked", "topic", r.Topic, "method", r.Method, "id", r.ID, "panic", fmt.Sprint(p), "stack", string(buf))
				res, err = nil, Errorf(CodeInternal, "handler panicked: %v", p)
			}
		}()
		return h(ctx, r)
	}
}

// LogRequests returns middleware that logs each request at Debug level, and
// each failed one at Warn, with its topic, method, id, sender, duration and
// error code. Payloads are not logged.
func LogRequests(log *slog.Logger) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, r *Request) (any, error) {
			start := time.Now()
			res, err := next(ctx, r)
			attrs := []any{"topic", r.Topic, "method", r.Method, "id", r.ID, "from", r.From, "took", time.Since(start)}
			if err != nil {
				log.WarnContext(ctx, "rpc: request failed", append(attrs, "code", CodeOf(err).String(), "err", err)...)
			} else {
				log.DebugContext(ctx, "rpc: request handled", attrs...)
			}
			return res, err
		}
	}
}
