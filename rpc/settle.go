package rpc

import (
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/kafkarpc/kafkarpc/transport"
)

// settle is the pipeline's last stage and the one owner of a delivery's
// outcome: it alone finishes the delivery's dedup entry and produces what
// is due, in this order:
//
//  1. the dead letter of a poisoned record. If it cannot be written before
//     a hard stop, nothing else is: the entry is dropped and the record left
//     uncommitted, so its next delivery dead-letters it again (a marker
//     written first would answer that delivery and lose the dead letter);
//  2. the dedup entry, with the reply exactly as it will be sent, made
//     visible before the reply is produced, so that a copy of the request
//     arriving meanwhile is answered with it rather than dropped;
//  3. the dedup marker and the reply, in that order (see sendReply), in
//     one produce when they fit.
//
// It reports whether the record is done with (see handle).
func (r *serveRun) settle(d *delivery, o outcome) bool {
	switch o.kind {
	case outSkip, outWait:
		return true
	case outAgain:
		r.release(d)
		return false
	case outResend:
		if reply := o.entry.reply.Load(); reply != nil {
			ok, _ := r.produce("reply (again)", d.to.id, *reply)
			return ok
		}
		return true
	case outPoison:
		if !r.deadLetter(d, o.reason, o.err) {
			r.release(d)
			return false
		}
		if d.to.replyTo != "" {
			o.reply, o.hasReply = r.s.replyMessage(&d.to, KindReply, nil, o.err), true
		}
	}
	if d.legacy || d.to.id == "" {
		r.release(d)
		return true // nothing to record or answer
	}
	e := o.made
	if e == nil {
		e = new(handledEntry)
	}
	e.id = d.to.id
	if o.hasReply { // the entry holds the reply: one allocation for both
		e.sent = o.reply
		e.reply.Store(&e.sent)
	}
	if d.owns {
		d.waiters = r.dedup.finish(d.to.id, e, time.Now(), r)
	}
	ok := r.sendReply(d, e, o.owned || !o.hasReply)
	if d.owns {
		r.dedup.trim() // after the reply: see finish
	}
	return ok
}

// release gives up the delivery's dedup entry without recording it: the
// request may run again.
// The copies that waited for it stay undone, as it does.
func (r *serveRun) release(d *delivery) {
	if d.owns {
		r.dedup.finish(d.to.id, nil, time.Time{}, r)
	}
}

// sendReply produces e's reply (if any) and its dedup marker (if the window
// is persisted): in one produce, so that both or neither are written, when
// the transport takes them together. When it does not (too large), each
// goes alone, and a reply too large on its own is replaced by an error
// reply (CodeResourceExhausted) so the caller learns what happened; the
// window's entry is updated to match. owned says the reply's Value may be
// handed over to the transport (see ownedProducer): the reply and the
// marker (which shares that Value) are then not copied by a transport that
// can take them; the fallbacks below always copy.
func (r *serveRun) sendReply(d *delivery, e *handledEntry, owned bool) bool {
	reply := e.reply.Load()
	marker, persisted := r.marker(d, e)
	// The marker goes first: a transport that appends a batch's records
	// one after the other (the embedded broker, one partition at a time)
	// then never shows the reply without its marker. The other way round,
	// a caller could see its reply, and another instance take the request
	// over (a twin, a rebalance), before the marker was written: the
	// request ran again (TestInstanceFromEnvFencesTwin, about 1 run in 10
	// under -race; TestBreak7MarkerBeforeReply).
	batch := d.batch[:0]
	if persisted {
		batch = append(batch, marker)
	}
	if reply != nil {
		batch = append(batch, *reply)
	}
	ok, err := r.produceAs("reply", d.to.id, owned, batch...)
	if ok && err == nil {
		*d.batch = [2]transport.Message{} // holds nothing alive until the worker's next reply
	}
	// Otherwise it is left as it is, and the worker takes a new one: a
	// transport may still read the records of a produce that failed
	// (transport/upstash's, which returns ctx's error while its request is
	// in flight, checks the answer against them when it comes).
	// TestBreak7ReplyBatchKeptByTransportAfterHardStop.
	if reply == nil || !errors.Is(err, transport.ErrMessageTooLarge) {
		return ok
	}
	// Too large together (a transport whose limit is on the batch): each
	// goes alone, the marker still first. Which reply will be sent is not
	// known until the reply has been tried alone (it may be replaced
	// below), so the marker leaves it out, as it does a large reply's:
	// another instance does not run the request again, nor send a reply
	// again. Without a persisted window the reply already went alone.
	marked := true
	if persisted {
		marked, _ = r.produce("dedup marker", d.to.id, markerOmitting(r.s.cfg.dedupTopic, r.dedup.self, e.id, messageSize(reply)))
		ok, err = r.produce("reply", d.to.id, *reply)
	}
	if errors.Is(err, transport.ErrMessageTooLarge) {
		small := r.s.replyMessage(&d.to, KindReply, nil,
			Errorf(CodeResourceExhausted, "reply of %d bytes is over the transport's limit", len(reply.Value)))
		e.reply.Store(&small) // what a copy of the request will be answered with
		ok, _ = r.produce("error reply", d.to.id, small)
	}
	return ok && marked
}

// marker is the dedup-topic record for e, and whether the window is
// persisted at all.
func (r *serveRun) marker(d *delivery, e *handledEntry) (transport.Message, bool) {
	if !r.persists(d) {
		return transport.Message{}, false
	}
	return markerFor(r.s.cfg.dedupTopic, r.dedup.self, e.id, e.reply.Load()), true
}

// persists says d, once settled, gets a dedup marker: the window is
// persisted, and d is not a legacy record.
func (r *serveRun) persists(d *delivery) bool {
	return r.dedup != nil && r.s.cfg.dedupTopic != "" && !d.legacy
}

// produce writes msgs, retrying transient transport errors with
// replyBackoff until they are written, fail for good, or a hard stop (the
// drain timeout) ends the handlers' context: the handler's work is done, so
// what settle produces is worth the wait, and giving up would hold back the
// partition's commits for the rest of the run. The first attempt is made
// even during a hard stop, bounded by finalCtx. Permanent errors (unknown
// topic, too large, invalid, closed) are logged and the record counts as
// done, so that one bad reply-to cannot stall a partition; err is the
// permanent error, for callers that can do better.
func (r *serveRun) produce(what, id string, msgs ...transport.Message) (ok bool, err error) {
	return r.produceAs(what, id, false, msgs...)
}

// produceAs is produce; owned says msgs may be handed over to the
// transport (see ownedProducer).
func (r *serveRun) produceAs(what, id string, owned bool, msgs ...transport.Message) (ok bool, err error) {
	if len(msgs) == 0 {
		return true, nil
	}
	// A ProduceOwned that failed may have filled msgs in place (the
	// partition chosen, ManualPartition cleared): a retry sends them as
	// they were. Only small batches are handed over, so that this copy
	// stays on the stack.
	var saved [2]transport.Message
	if owned && len(msgs) > len(saved) {
		owned = false
	}
	if owned {
		copy(saved[:], msgs)
	}
	// The first attempt is made outside retry: the common case, a produce
	// that works, then costs no closure. It rides on the poll loop's next
	// poll when it can (carry.go); its failure is retried as an own
	// produce's.
	err, carried := r.carry.hand(r.finalCtx, msgs)
	if !carried {
		err = r.produceOnce(owned, msgs)
	}
	if err == nil {
		return true, nil
	}
	var refused error
	first := true
	err = retry(r.handlerCtx, replyBackoff, func() error {
		if !first {
			if owned {
				copy(msgs, saved[:len(msgs)])
			}
			err = r.produceOnce(owned, msgs)
		}
		first = false
		if err != nil && permanentProduceErr(err) {
			refused = err
			return backoff.Permanent(err)
		}
		return err
	}, func(err error, attempt int) {
		if attempt >= 5 && (attempt-5)%replyWarnEvery == 0 {
			r.s.log.Warn("rpc: "+what+" not produced yet; retrying", "topic", msgs[len(msgs)-1].Topic, "id", id, "attempts", attempt, "err", err)
		}
	})
	switch {
	case refused != nil:
		r.s.log.Error("rpc: "+what+" lost: the transport refused it", "topic", msgs[len(msgs)-1].Topic, "id", id, "err", refused)
		return true, refused
	case err != nil:
		r.s.log.Error("rpc: "+what+" not produced before the stop; the request stays uncommitted and will be redelivered", "topic", msgs[len(msgs)-1].Topic, "id", id, "err", err)
		return false, nil
	}
	return true, nil
}

// replyWarnEvery is how many failed attempts of a reply's produce pass
// between two warnings, after the first at the fifth: with replyBackoff's
// 1 s cap, about one a minute, so that a worker held by a produce that
// keeps failing says so while it lasts, not once. A variable for tests.
var replyWarnEvery = 60

// produceOnce is one attempt of produceAs, bounded by finalCtx.
func (r *serveRun) produceOnce(owned bool, msgs []transport.Message) error {
	_, err := r.s.p.produce(r.finalCtx, owned, msgs...)
	return err
}
