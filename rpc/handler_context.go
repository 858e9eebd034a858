package rpc

import (
	"context"
	"fmt"
)

// handlerCtx is a handler's context and its request in one allocation: a
// lazyCtx (context.go) for the deadline, and the responder that the
// handler-context functions below find in it.
type handlerCtx struct {
	lazyCtx
	resp responder
}

type responderKey struct{}

// responder is what a handler's context knows of its request.
type responder struct {
	run *serveRun
	d   *delivery
}

// newHandlerCtx returns the handler context of d, which holds it: the
// delivery and its context are one allocation.
func newHandlerCtx(r *serveRun, d *delivery) *handlerCtx {
	hc := &d.hc
	hc.lazyCtx.parent, hc.lazyCtx.deadline = r.handlerCtx, d.req.Deadline
	hc.resp = responder{run: r, d: d}
	return hc
}

// Value answers the responder key itself, so that RequestFrom, RequestID
// and Progress do not build the lazy context.
func (hc *handlerCtx) Value(key any) any {
	if _, ok := key.(responderKey); ok {
		return &hc.resp
	}
	return hc.lazyCtx.Value(key)
}

// RequestFrom returns the request being handled in ctx, for handlers
// registered with Handle, which get only the decoded payload.
func RequestFrom(ctx context.Context) (*Request, bool) {
	rs, ok := ctx.Value(responderKey{}).(*responder)
	if !ok {
		return nil, false
	}
	return &rs.d.req, true
}

// RequestID returns the rpc-id of the request being handled in ctx (stable
// across redeliveries, so a handler can make its side effects idempotent),
// or "" outside a handler and for legacy records.
func RequestID(ctx context.Context) string {
	if r, ok := RequestFrom(ctx); ok {
		return r.ID
	}
	return ""
}

// Progress sends a progress notice for the request being handled in ctx to
// its caller: a Call's WithProgress callback, or the OnNotice handler of a
// Send. It does nothing (and returns nil) when the request has no reply-to,
// as for notifications and legacy records.
func Progress(ctx context.Context, v any) error {
	rs, ok := ctx.Value(responderKey{}).(*responder)
	if !ok || rs.d.to.replyTo == "" {
		return nil
	}
	payload, err := marshalPayload(v)
	if err != nil {
		return err
	}
	msg := rs.run.s.replyMessage(&rs.d.to, KindProgress, payload, nil)
	if _, err := rs.run.s.t.Produce(ctx, msg); err != nil {
		return wrapCallErr(fmt.Errorf("rpc: progress for %s: %w", rs.d.to.id, err))
	}
	return nil
}
