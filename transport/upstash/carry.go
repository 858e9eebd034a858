package upstash

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// The carried produce (transport.CarryingPoller) over the project's REST
// server's extension of POST /consume (restserver.CarryHeader): the
// records go in the consume body's "produce" field, the server writes them
// first and sends its answer for them in the Kafka-Produced header before
// the long poll begins. A member that replies to what it reads (an rpc
// server) thus sends each reply with its next consume: one HTTP exchange
// instead of two.

// Names of the extension (restserver.CarryHeader, CarryValue,
// ProducedHeader).
const (
	carryHeader    = "Kafka-Carry"
	carryValue     = "produce"
	producedHeader = "Kafka-Produced"
	// maxCarried bounds the records one consume carries: the server takes
	// at most 1,000 (restserver.MaxCarriedRecords); a larger batch is
	// produced on its own.
	maxCarried = 1000
)

// producedHeaderSize is about how many bytes the Kafka-Produced header
// answering msgs takes: a Metadata object a record (restwire.AppendMetadata:
// 48 bytes of JSON around the topic and the numbers, taken here with a
// 3-digit partition, a 13-digit offset and a 13-digit timestamp), a comma
// between two, the brackets.
func producedHeaderSize(msgs []transport.Message) int {
	n := 2
	for i := range msgs {
		n += 48 + 3 + 13 + 13 + 1 + len(msgs[i].Topic)
	}
	return n
}

var (
	_ transport.CarryingPoller = (*consumer)(nil)
	_ transport.CarryLimiter   = (*consumer)(nil)
)

// sawAnswer notes, from any consume answer, whether the server takes
// records with a consume.
func (c *consumer) sawAnswer(resp *http.Response) {
	if v := resp.Header[carryHeader]; len(v) > 0 && v[0] == carryValue && !c.carries.Load() {
		c.carries.Store(true)
	}
}

// PollCarrying implements transport.CarryingPoller: it produces msgs as
// Transport.Produce does (the same validation and errors), then polls as
// Poll does.
//
// On a server that has said it takes records with a consume (the project's
// REST server sends restserver.CarryHeader with every consume answer, the
// one Subscribe makes included), the records go with the consume request
// and acked is called as soon as the answer's headers arrive, before the
// server's long poll. Elsewhere, and when the records are more than one
// POST /produce would carry ([WithMaxBatch], [WithMaxBatchBytes], at most
// 1,000 records), when records from an earlier Poll are waiting or when a
// Poll's request is still in flight, it calls Produce and then Poll.
//
// When a carried request gets no answer saying the records were written
// (the server refused the consume before its produce, failed, or does not
// take the field after all), nothing was written by it: the records are
// produced with Produce, whose outcome acked gets. A 2xx answer without
// that word means the server ignores the field: the consumer stops
// carrying. If the consumer is closed while a carried request is on its
// way, acked gets an error wrapping transport.ErrOutcomeUnknown.
//
// After Close or being fenced, nothing is produced: acked and PollCarrying
// get the error Poll returns. A carried request is not retried by itself
// (the caller's next Poll is its retry): a consume failure after the
// records were written is returned as Poll returns it.
func (c *consumer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func(written []transport.Message, err error)) ([]transport.Message, error) {
	if len(msgs) == 0 {
		acked([]transport.Message{}, nil)
		return c.Poll(ctx)
	}
	if c.t.isClosed() {
		err := errClosed("produce")
		acked(nil, err)
		return nil, err
	}
	// The records, checked first, are encoded as the "produce" field of
	// the consume body, which is written in one pooled buffer (see
	// carriedBody).
	size, err := carriedSize(msgs)
	if err != nil {
		acked(nil, err)
		return nil, err
	}
	wait := c.t.pollWait(ctx)
	body, produced := c.carriedBody(wait, msgs, size)
	c.mu.Lock()
	if err := c.stateErr("poll"); err != nil {
		c.mu.Unlock()
		body.release()
		acked(nil, err)
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		body.release()
		acked(nil, err)
		return nil, err
	}
	if !c.carries.Load() || len(c.buf) > 0 || c.inflight != nil || !c.t.fitsCarry(msgs, produced) {
		c.mu.Unlock()
		body.release()
		out, err := c.t.Produce(ctx, msgs...)
		acked(out, err)
		if err != nil {
			return nil, err
		}
		return c.Poll(ctx)
	}
	c.inflight = c.startCarried(wait, msgs, body, acked)
	c.mu.Unlock()
	return c.Poll(ctx)
}

// carriedBody returns the body of a consume with the server-side wait
// carrying msgs (checked by carriedSize, which gave size), up to and
// without its closing brace, for consumeCarrying to end: {"topics":[..],
// "timeout":ms,"produce":[..]. It is in a buffer of the body pool (see
// sharedBody) with room for a commit riding along; the caller owns it and
// releases it. produced is the length of the "produce" field's value.
func (c *consumer) carriedBody(wait time.Duration, msgs []transport.Message, size int) (body *sharedBody, produced int) {
	body = newSharedBody(c.consumeBodySize()+size+carriedCommitRoom, c.t.ownClient)
	b := restwire.AppendConsumeRequest(body.bytes(), c.topics, timeoutMs(wait))
	b = append(b[:len(b)-1], `,"produce":`...) // without its closing brace
	at := len(b)
	b = appendCarried(b, msgs)
	body.set(b)
	return body, len(b) - at
}

// carriedCommitRoom is the room a carried consume body's buffer leaves for
// the "commit" field of a Commit riding along (one partition's offset, or
// a few); a larger one grows the buffer.
const carriedCommitRoom = 256

// startCarried starts a consume request that carries msgs (encoded in
// body, see carriedBody, which it releases once done), as startPoll starts
// a plain one. Called with c.mu held.
func (c *consumer) startCarried(wait time.Duration, msgs []transport.Message, body *sharedBody, acked func([]transport.Message, error)) *pollCall {
	call := &pollCall{started: time.Now(), done: make(chan struct{})}
	c.wg.Go(func() {
		defer close(call.done)
		defer body.release()
		msgs, err := c.consumeCarrying(wait, msgs, body, acked)
		if msgs == nil && err == nil {
			msgs = []transport.Message{}
		}
		call.msgs, call.err = msgs, err
	})
	return call
}

// consumeCarrying makes one POST /consume carrying records (encoded in
// shared, see carriedBody, which it ends) and calls acked once with their
// outcome.
func (c *consumer) consumeCarrying(wait time.Duration, records []transport.Message, shared *sharedBody, acked func([]transport.Message, error)) ([]transport.Message, error) {
	c.mu.Lock()
	ride := c.takeRide()
	c.mu.Unlock()
	body := shared.bytes()
	if ride != nil {
		body = append(body, `,"commit":`...)
		body = append(body, ride.offsets...)
		defer ride.unanswered()
	}
	body = append(body, '}')
	shared.set(body)
	cp := carried{records: records, acked: acked}
	onResponse := func(resp *http.Response) {
		c.sawAnswer(resp)
		if ride != nil {
			ride.answer(c, resp)
			ride.final(resp)
		}
		cp.answer(resp)
	}
	ans := carriedAnswer{path: c.consumePath}
	err := c.t.call(c.reqCtx, request{method: http.MethodPost, path: c.consumePath, url: c.consumeURL, header: c.header, body: body, shared: shared,
		wait: wait, noRetry: true, onResponse: onResponse, ack: c.ackValue()}, &ans)
	c.noteConsumed()
	if err == nil {
		c.acked(ans.msgs)
	}
	if cp.written {
		if err != nil {
			return nil, err
		}
		return c.keep(ans.msgs), nil
	}
	if c.reqCtx.Err() != nil {
		// Closed while the request was on its way: it may have been
		// served.
		cp.lost("consume "+c.key.group+"/"+c.key.instance, "the consumer was closed meanwhile")
		return nil, err
	}
	// Nothing says the records were written: the server refused the
	// consume before its produce, failed, or ignores the field (a 2xx
	// answer without the word), or the connection failed (as a Produce
	// that retries after one, this may write them twice).
	if err == nil {
		c.carries.Store(false)
		c.t.log.Warn("upstash: the server took a consume carrying records but did not say it wrote them; producing them on their own from now on",
			"group", c.key.group, "instance", c.key.instance)
	}
	perr := cp.alone(c.reqCtx, c.t)
	kept := []transport.Message(nil)
	if err == nil {
		kept = c.keep(ans.msgs)
	}
	if perr != nil {
		if len(kept) > 0 {
			c.mu.Lock()
			c.buf = append(c.buf, kept...) // not lost: the next Poll returns them
			c.mu.Unlock()
		}
		return nil, perr
	}
	return kept, err
}

// consumeBody encodes the body of c's POST /consume with the server-side
// wait, and the field "commit" when not nil (raw JSON), in one allocation.
func (c *consumer) consumeBody(wait time.Duration, commit []byte) []byte {
	b := restwire.AppendConsumeRequest(make([]byte, 0, c.consumeBodySize()+len(commit)), c.topics, timeoutMs(wait))
	b = b[:len(b)-1] // its closing brace
	if commit != nil {
		b = append(b, `,"commit":`...)
		b = append(b, commit...)
	}
	return append(b, '}')
}

// consumeBodySize is about how many bytes c's consume body takes without
// its "produce" and "commit" fields.
func (c *consumer) consumeBodySize() int {
	size := 48
	for _, t := range c.topics {
		size += len(t) + 8
	}
	return size
}

// carriedSize checks msgs as Produce does, for a "produce" field (see
// checkProduce), and returns about how many bytes their JSON array takes.
func carriedSize(msgs []transport.Message) (int, error) {
	size := 2
	for i := range msgs {
		n, err := checkProduce(i, &msgs[i])
		if err != nil {
			return 0, err
		}
		size += n + n/8 + 1
	}
	return size, nil
}

// appendCarried appends msgs, checked by carriedSize, as the JSON array of
// a "produce" field.
func appendCarried(b []byte, msgs []transport.Message) []byte {
	b = append(b, '[')
	for i := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = restwire.AppendTopicMessage(b, &msgs[i])
	}
	return append(b, ']')
}

// CarryFits implements transport.CarryLimiter: msgs are few enough to ride
// on one consume, and their answer's header small enough to pass proxies
// ([WithMaxCarriedAnswer]). Their size in bytes is checked by PollCarrying
// ([WithMaxBatchBytes]).
func (c *consumer) CarryFits(msgs []transport.Message) bool { return c.t.carryFits(msgs) }

// carryFits reports whether msgs are no more records than one POST
// /produce would carry ([WithMaxBatch]) and than the server takes
// (maxCarried), and whether the Kafka-Produced header answering them is
// within [WithMaxCarriedAnswer] (TestCarriedAnswerFitsBehindAProxy).
func (t *Transport) carryFits(msgs []transport.Message) bool {
	return len(msgs) <= min(t.cfg.maxBatch, maxCarried) &&
		(t.cfg.maxCarried == 0 || producedHeaderSize(msgs) <= t.cfg.maxCarried)
}

// fitsCarry reports whether msgs, size bytes as a "produce" field, may
// ride on one request: carryFits, and no more bytes than one POST /produce
// would carry ([WithMaxBatchBytes]).
func (t *Transport) fitsCarry(msgs []transport.Message, size int) bool {
	return t.carryFits(msgs) && size <= t.cfg.maxBatchBytes
}

// carried is a produce riding on one request (a consume or a fetch): its
// records and the acked to call, exactly once, with their outcome.
type carried struct {
	records []transport.Message
	acked   func([]transport.Message, error)
	written bool // acked got the server's word; used by the request's goroutine
}

// answer acks the records from resp's Kafka-Produced header, if it has
// one: the request's onResponse calls it with each response's headers as
// they arrive, before the body (which the server sends before it waits).
func (p *carried) answer(resp *http.Response) {
	if v := resp.Header[producedHeader]; len(v) > 0 && !p.written {
		p.written = true
		p.acked(producedFrom(p.records, v[0]))
	}
}

// lost acks records whose request ended unanswered (said nothing of them)
// in a way that leaves no one able to learn whether the server wrote them:
// the request was given up while on its way (on: the request, for the
// message; why: what gave it up).
func (p *carried) lost(on, why string) {
	p.acked(nil, fmt.Errorf("upstash: produce with %s: %s: %w", on, why, transport.ErrOutcomeUnknown))
}

// alone produces the records on their own, their request having said
// nothing of them (refused before its produce, failed, or a server that
// ignores the field), and acks that produce's outcome, which it returns.
func (p *carried) alone(ctx context.Context, t *Transport) error {
	out, err := t.Produce(ctx, p.records...)
	p.acked(out, err)
	return err
}

// producedFrom is the outcome of producing records from the
// Kafka-Produced header v: the records with their positions, or, when the
// header cannot be true of what was sent, an error wrapping
// transport.ErrOutcomeUnknown (the server did write something).
func producedFrom(records []transport.Message, v string) ([]transport.Message, error) {
	meta, err := restwire.DecodeMetadata([]byte(v))
	if err == nil && len(meta) != len(records) {
		err = fmt.Errorf("%d results for %d records", len(meta), len(records))
	}
	if err != nil {
		return nil, fmt.Errorf("upstash: produce with consume or fetch: unreadable %s header: %v: %w", producedHeader, err, transport.ErrOutcomeUnknown)
	}
	pc := &produceCall{msgs: records} // the checks of a POST /produce answer
	if err := checkAnswer([]*produceCall{pc}, meta); err != nil {
		return nil, err
	}
	return pc.result(meta)
}

// carriedAnswer is the answer of a consume or fetch that carried records:
// the records, or, once the server has sent its headers, an error as the
// body {"error": "...", "status": N}.
type carriedAnswer struct {
	path string // the request's path, escaped
	msgs []transport.Message
}

func (a *carriedAnswer) decodeJSON(ctx context.Context, data []byte) (err error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var body struct {
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(t, &body); err != nil || body.Error == "" {
			if len(t) > 200 {
				t = t[:200]
			}
			return fmt.Errorf("an object that is not an error: %q", t)
		}
		e := &Error{Status: http.StatusInternalServerError, Message: body.Error, Method: http.MethodPost,
			Path: request{path: a.path}.display()}
		if body.Status >= 400 && body.Status < 600 {
			e.Status = body.Status
		}
		return e
	}
	a.msgs, err = restwire.DecodeMessagesLimited(ctx, data, decodeBudget(len(data)))
	return err
}

// Commits ride on consumes, too: on a server that takes records with a
// consume (restserver.CarryHeader), it also takes offsets to commit (the
// "commit" field, committed as POST /commit with Kafka-Commit-Fenced: true
// would, before the long poll, the outcome in the Kafka-Committed header).
// A Commit waits up to commitRideWait for the consumer's next consume to
// start and rides on it; when none starts (an idle consumer's long poll is
// in flight), or the consume's answer says nothing of the commit, it goes
// alone. Commits are idempotent: one sent again after a doubt commits the
// same offsets.

// commitRideWait is how long a Commit waits for a consume to ride on.
const commitRideWait = 2 * time.Millisecond

// committedHeader is restserver.CommittedHeader.
const committedHeader = "Kafka-Committed"

// commitRide is a Commit carried by a consume.
type commitRide struct {
	offsets  []byte        // the JSON array of offsets
	done     chan struct{} // closed once the outcome is known
	err      error         // the server's word on the commit
	alone    bool          // the consume did not commit: commit alone
	answered bool          // set by the consume's goroutine only
}

// takeRide takes the Commit waiting for a consume, if any. Called with
// c.mu held.
func (c *consumer) takeRide() *commitRide {
	r := c.ride
	c.ride = nil
	return r
}

// rideResponse is the onResponse of a consume carrying ride.
func (c *consumer) rideResponse(ride *commitRide) func(*http.Response) {
	return func(resp *http.Response) {
		c.sawAnswer(resp)
		ride.answer(c, resp)
		ride.final(resp)
	}
}

// final ends the ride at once when resp, a 2xx answer (final: not
// retried), says nothing of the commit in its headers, which the server
// sends all at once: it did not commit (it answered a carried produce
// before a wait, say), and the Commit goes alone now rather than after the
// consume's long poll.
func (r *commitRide) final(resp *http.Response) {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		r.unanswered()
	}
}

// answer takes the commit's outcome from the consume's answer, if it
// says.
func (r *commitRide) answer(c *consumer, resp *http.Response) {
	v := resp.Header[committedHeader]
	if len(v) == 0 || r.answered {
		return
	}
	var body struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(v[0]), &body); err != nil {
		return // unreadable: as no word (the commit goes again, alone)
	}
	r.answered = true
	if body.Error != "" {
		e := &Error{Status: http.StatusInternalServerError, Message: body.Error, Method: http.MethodPost,
			Path: "/commit/" + c.key.group + "/" + c.key.instance}
		if body.Status >= 400 && body.Status < 600 {
			e.Status = body.Status
		}
		r.err = e
	}
	close(r.done)
}

// unanswered ends a ride the consume's answer said nothing of: the Commit
// goes alone.
func (r *commitRide) unanswered() {
	if !r.answered {
		r.answered = true
		r.alone = true
		close(r.done)
	}
}

// commitRiding lets the next consume carry a commit of offsets (see
// above). rode is false when it did not: the caller commits alone.
func (c *consumer) commitRiding(ctx context.Context, offsets []byte) (err error, rode bool) {
	if !c.carries.Load() {
		return nil, false
	}
	ride := &commitRide{offsets: offsets, done: make(chan struct{})}
	c.mu.Lock()
	if c.ride != nil || c.closed || c.fenced {
		c.mu.Unlock()
		return nil, false
	}
	c.ride = ride
	c.mu.Unlock()
	t := time.NewTimer(commitRideWait)
	defer t.Stop()
	select {
	case <-ride.done:
	case <-t.C:
	case <-ctx.Done():
	}
	c.mu.Lock()
	if c.ride == ride { // no consume took it
		c.ride = nil
		c.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err, true
		}
		return nil, false
	}
	c.mu.Unlock()
	select { // taken: its outcome comes with the consume's headers
	case <-ride.done:
	case <-ctx.Done():
		return ctx.Err(), true // it may be committed: a commit is idempotent
	}
	if ride.alone {
		return nil, false
	}
	return ride.err, true
}
