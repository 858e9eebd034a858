package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A record read by Serve goes through four stages, each a method of
// serveRun:
//
//	admit  (this file)  size, envelope, kind, deadline, dedup admission
//	route  (route.go)   the handler for the topic, method or legacy key
//	invoke (this file)  the handler, with retries, and its result encoded
//	settle (settle.go)  dead letter, dedup entry, reply and marker
//
// Each stage but settle may end a record's journey by returning an outcome;
// settle is the one place that acts on an outcome.

// delivery is one record on its way through the pipeline.
type delivery struct {
	req Request // the record (req.Message) and what its envelope says
	// to is where the reply goes and what it answers (from the envelope,
	// which admit decodes on its stack: only this part of it is kept, so
	// that the delivery, with its handler context, fits a 448-byte size
	// class). to.id is the envelope's rpc-id even for a record admit
	// refuses (req.ID is only set for one it admits); to.replyTo is ""
	// when no reply is due (always for a record that is not a request).
	to replyAddr
	// legacy is the envelope's: a record without rpc-* headers (set, like
	// to, for a record admit refuses too).
	legacy bool
	// owns says this delivery marked to.id in flight in the dedup window
	// and owns its entry: settle finishes it.
	owns bool
	h    HandlerFunc // set by route; nil when no route matches
	// waiters are the copies that waited for this delivery (see waiter):
	// done when it is done.
	waiters []waiter
	// hc is the handler's context (see newHandlerCtx), made once by invoke.
	hc handlerCtx
	// batch holds the reply and the dedup marker for sendReply's produce,
	// so that it needs no allocation of its own: the worker's, which
	// handles one delivery at a time (it is not part of the delivery, which
	// it would make a size class larger).
	batch *[2]transport.Message
}

// outcomeKind says what settle does with a delivery.
type outcomeKind int

const (
	outRun    outcomeKind = iota // admitted: route and invoke next
	outSkip                      // done, nothing to send (expired)
	outWait                      // a copy of a request in flight: done with it
	outAgain                     // not done: left uncommitted for redelivery
	outResend                    // a duplicate: send the stored reply again
	outReply                     // handled: send the reply (if any) and record it
	outPoison                    // cannot be served: dead letter, error reply, record
)

// outcome is what the stages made of a delivery.
type outcome struct {
	kind  outcomeKind
	reply transport.Message // outReply, outPoison: the reply, when hasReply
	// hasReply says a reply is due.
	hasReply bool
	// owned says the reply's Value was encoded here (not a []byte or
	// json.RawMessage the handler still holds): it may be handed over to
	// the transport (see ownedProducer).
	owned  bool
	reason string        // outPoison: the dlq-reason
	err    *Error        // outPoison: the error the caller gets
	entry  *handledEntry // outResend: the stored entry
	// made, when not nil, is the entry settle records: its reply's
	// headers were written in the same allocation (see replyOutcome).
	made *handledEntry
}

func poisoned(reason string, e *Error) outcome {
	return outcome{kind: outPoison, reason: reason, err: e}
}

// handle runs one record through the pipeline. It reports whether the
// record is done with, so that its offset may be committed: false only when
// the handler was cut short by a hard stop or what settle must produce could
// not be, and the record must be delivered again.
//
// A copy of a request in flight reports false too: its offset is done with
// the first delivery's (see waiter).
func (r *serveRun) handle(tk *ticket, batch *[2]transport.Message) bool {
	d, o := r.admit(tk)
	d.batch = batch
	if o.kind == outRun {
		r.route(d)
		o = r.invoke(d)
	}
	done := r.settle(d, o)
	if done {
		for i := range d.waiters {
			d.waiters[i].done()
		}
	}
	return done && o.kind != outWait
}

// admit checks a record before any handler sees it: size, envelope, kind
// and deadline; then the dedup window, which marks a new request in flight
// (the delivery then owns the entry) and answers a known one.
func (r *serveRun) admit(tk *ticket) (*delivery, outcome) {
	s := r.s
	m := &tk.m
	d := &delivery{}
	d.req.Message = *m // one allocation for the delivery and its Request
	m = &d.req.Message
	env, err := decodeEnvelope(m)
	d.to = replyAddr{id: env.id, traceparent: env.traceparent, replyPartition: env.replyPartition}
	if env.kind == KindRequest {
		d.to.replyTo = env.replyTo
	}
	d.legacy = env.legacy
	switch {
	case s.cfg.maxPayload > 0 && len(m.Value) > s.cfg.maxPayload:
		return d, poisoned(reasonOversize, Errorf(CodeResourceExhausted,
			"payload of %d bytes is over the server's limit of %d", len(m.Value), s.cfg.maxPayload))
	case err != nil:
		return d, poisoned(reasonBadEnvelope, NewError(CodeInvalidArgument, err))
	case env.kind == KindReply || env.kind == KindProgress:
		return d, poisoned(reasonNotARequest, Errorf(CodeInvalidArgument, "%s record on request topic %s", env.kind, m.Topic))
	}
	// A payload that is not JSON is caught where it is decoded (Handle,
	// Request.Decode), which dead-letters it as undecodable: no second scan
	// of every payload here.
	d.req.Method, d.req.From, d.req.ID, d.req.Kind, d.req.Legacy = env.method, env.from, env.id, env.kind, env.legacy
	if env.legacy {
		return d, outcome{kind: outRun}
	}
	now := time.Now()
	skew, known := r.skew()
	d.req.Deadline = env.deadlineFor(m, now, skew)
	if !known && !d.req.Deadline.IsZero() && !now.Before(d.req.Deadline) && env.timeout > 0 {
		// Without the dedup reader the broker's clock is not measured: a
		// request that looks expired on arrival may be one stamped by a
		// clock behind ours. Run it with its budget counted from now
		// rather than drop it unanswered.
		d.req.Deadline = now.Add(env.timeout)
	}
	if !d.req.Deadline.IsZero() && !now.Before(d.req.Deadline) {
		s.log.Info("rpc: expired request not run", "topic", m.Topic, "id", env.id, "from", env.from, "deadline", d.req.Deadline)
		return d, outcome{kind: outSkip}
	}
	if r.dedup == nil {
		return d, outcome{kind: outRun}
	}
	switch state, e := r.dedup.begin(env.id, now, waiter{run: r, tk: *tk}); state {
	case dedupDone:
		s.dupes.Add(1)
		s.log.Debug("rpc: duplicate request not run again", "topic", m.Topic, "id", env.id)
		return d, outcome{kind: outResend, entry: e}
	case dedupInFlight:
		s.dupes.Add(1)
		s.log.Debug("rpc: copy of a request still running: done when it is", "topic", m.Topic, "id", env.id)
		return d, outcome{kind: outWait} // the first delivery replies
	}
	d.owns = true
	return d, outcome{kind: outRun}
}

// skew is the broker's clock minus this machine's, as measured when the
// dedup topic was replayed, and whether it was measured (not without a
// dedup topic).
func (r *serveRun) skew() (time.Duration, bool) {
	if r.dedup == nil || !r.dedup.skewKnown.Load() {
		return 0, false
	}
	return time.Duration(r.dedup.skew.Load()), true
}

// invoke runs the routed handler (or the fallback for no route) and turns
// what it returned into an outcome.
func (r *serveRun) invoke(d *delivery) outcome {
	hc := newHandlerCtx(r, d)
	defer hc.release()
	if d.h == nil {
		noRoute := Errorf(CodeUnimplemented, "no handler for %s", routeName(d.req.Topic, d.req.Method))
		if !r.unhandled(hc, &d.req) {
			return poisoned(reasonUnknownRoute, noRoute)
		}
		return r.replyOutcome(d, nil, noRoute)
	}
	res, herr := r.observedCall(hc, d)
	switch {
	case herr == nil:
	case r.handlerCtx.Err() != nil && errors.Is(herr, context.Canceled):
		r.s.log.Warn("rpc: handler canceled by shutdown; the request will be redelivered", "request", d.req.String())
		return outcome{kind: outAgain}
	case errors.Is(herr, errUndecodable):
		return poisoned(reasonUndecodable, handlerErr(herr))
	case isRetryable(herr):
		return poisoned(reasonRetriesExhausted, handlerErr(herr))
	case d.to.replyTo == "":
		r.s.log.Warn("rpc: handler failed", "request", d.req.String(), "err", herr)
		return outcome{kind: outReply}
	default:
		return r.replyOutcome(d, nil, handlerErr(herr))
	}
	if d.to.replyTo == "" {
		return outcome{kind: outReply}
	}
	payload, err := marshalResult(res)
	if err != nil {
		r.s.log.Error("rpc: handler's result cannot be encoded", "request", d.req.String(), "err", err)
		return r.replyOutcome(d, nil, Errorf(CodeInternal, "encode reply: %v", err))
	}
	if callerOwned(res) {
		// The handler's []byte or json.RawMessage stays the handler's,
		// which may reuse it once it has returned; the dedup entry keeps
		// the reply for as long as the window does. One copy, ours: it
		// may then be handed over like an encoded result.
		payload = bytes.Clone(payload)
	}
	o := r.replyOutcome(d, payload, nil)
	o.owned = true
	return o
}

// replyOutcome is outReply with the reply built, when one is due.
func (r *serveRun) replyOutcome(d *delivery, payload []byte, herr *Error) outcome {
	if d.to.replyTo == "" {
		return outcome{kind: outReply}
	}
	// The entry settle records holds the reply: it, the reply's headers
	// and room for the marker's are one allocation.
	e, hb := newReplyEntry(r.replyRoom(d, herr))
	reply := r.s.replyMessageIn(hb, &d.to, KindReply, payload, herr)
	return outcome{kind: outReply, reply: reply, hasReply: true, made: e}
}

// replyRoom is how many headers d's reply (with herr) and its dedup marker
// have, at most.
func (r *serveRun) replyRoom(d *delivery, herr *Error) int {
	n := r.s.replyHeaderCount(&d.to, herr)
	if r.persists(d) {
		n += markerHeaders - 1
		if d.to.replyPartition >= 0 {
			n++
		}
	}
	return n
}

// call calls h, retrying errors marked Retryable with backoff, up to the
// configured attempts and within the request's deadline. It returns the
// last attempt's result.
func (r *serveRun) call(ctx context.Context, h HandlerFunc, req *Request) (res any, err error) {
	p := backoffPolicy{initial: r.s.cfg.retryDelay, max: 5 * time.Second, attempts: r.s.cfg.retries}
	stopped := retry(ctx, p, func() error {
		res, err = h(ctx, req)
		if e, ok := err.(*Error); ok && e == nil {
			err = nil // the classic typed nil: a nil *Error is no error
		}
		if err == nil || !isRetryable(err) {
			return nil
		}
		return err
	}, func(err error, attempt int) {
		r.s.log.Debug("rpc: retryable handler error; retrying", "request", req.String(), "attempt", attempt, "err", err)
		if o := r.s.cfg.observer; o != nil {
			o.Counted(Event{Kind: EventRetry, Topic: req.Topic})
		}
	})
	if stopped != nil && ctx.Err() != nil && errors.Is(stopped, ctx.Err()) {
		// The wait for the next attempt was cut short: by a hard stop (the
		// request is redelivered) or by the request's deadline (the caller
		// has gone). Either way the retries were not exhausted.
		return nil, stopped
	}
	return res, err
}

// observedCall is call with the routed handler, told to the server's
// Observer when it has one. A traceparent the Observer returns is carried
// by the request's replies and progress notices.
func (r *serveRun) observedCall(hc *handlerCtx, d *delivery) (any, error) {
	o := r.s.cfg.observer
	if o == nil {
		return r.call(hc, d.h, &d.req)
	}
	ctx, tp, done := o.HandleStarted(hc, &d.req)
	if tp != "" {
		d.to.traceparent = tp
	}
	res, err := r.call(ctx, d.h, &d.req)
	done(err)
	return res, err
}

// marshalResult encodes a handler's result. A MarshalJSON that panics is
// an error like any other: the request must get an answer, and a record
// that crashed its server would crash every server of the group in turn.
func marshalResult(res any) (payload []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			payload, err = nil, fmt.Errorf("encoding the result panicked: %v", p)
		}
	}()
	return marshalPayload(res)
}
