package upstash

import (
	"context"
	"net/http"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// The carried produce of a Tail's consumer (transport.CarryingPoller) over
// the project's REST server's extension of POST /fetch
// (restserver.CarryHeader): the records go in the fetch body's "produce"
// field; the server writes them first and answers them in the
// Kafka-Produced header, sent before the fetch waits. An rpc client that
// reads its replies with a tail sends its request with the fetch that
// reads the reply: one HTTP exchange instead of two.

// What a Transport's server said of records carried by a fetch
// (Transport.fetchCarry).
const (
	fetchCarryUnknown int32 = iota // no /fetch answer seen yet
	fetchCarryYes                  // a /fetch answer said Kafka-Carry: produce
	fetchCarryNo                   // a carried fetch was answered without a word on its records: never again
)

var _ transport.CarryingPoller = (*tailer)(nil)

// sawFetchAnswer notes, from any /fetch answer, whether the server takes
// records with a fetch.
func (t *Transport) sawFetchAnswer(resp *http.Response) {
	if v := resp.Header[carryHeader]; len(v) > 0 && v[0] == carryValue && t.fetchCarry.Load() == fetchCarryUnknown {
		t.fetchCarry.CompareAndSwap(fetchCarryUnknown, fetchCarryYes)
	}
}

// PollCarrying implements transport.CarryingPoller: it produces msgs as
// Transport.Produce does (the same validation and errors), then polls as
// Poll does.
//
// When the tail reads one topic, on a server that has said in an earlier
// /fetch answer of this Transport that it takes records with a fetch (the
// project's REST server says so in every one), the records go with the
// fetch request and acked is called as soon as the answer's headers
// arrive, before the server waits for records: one HTTP exchange. With
// several topics (one fetch each), before such an answer, when another
// Poll of the tail is in progress (the records are not held back behind
// it), and when the records are more than one POST /produce would carry
// ([WithMaxBatch], [WithMaxBatchBytes], at most 1,000 records), it calls
// Produce and then Poll (which waits for the Poll in progress).
//
// When a carried fetch gets no answer saying the records were written
// (the server refused the fetch before its produce, failed, or does not
// take the field after all), nothing was written by it: the records are
// produced with Produce, whose outcome acked gets, and the records the
// fetch read are kept only if that produce succeeds (else they are read
// again by the next Poll). A 2xx answer without that word means the server
// ignores the field: the Transport stops carrying records with fetches. If
// ctx ends or the tail is closed while a carried fetch is on its way and
// before its answer's headers, acked gets an error wrapping
// transport.ErrOutcomeUnknown: the request may have been served.
//
// After Close, nothing is produced: acked and PollCarrying get an error
// wrapping transport.ErrClosed. A carried fetch is not retried by itself
// (the caller's next Poll is its retry): a fetch failure after the records
// were written is returned as Poll returns it, acked having had their
// outcome. Safe for concurrent use; its poll part is one at a time with
// the tail's other Polls, as Poll is.
func (tl *tailer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func(written []transport.Message, err error)) ([]transport.Message, error) {
	if len(msgs) == 0 {
		acked([]transport.Message{}, nil)
		return tl.Poll(ctx)
	}
	if tl.ctx.Err() != nil {
		err := errClosed("poll")
		acked(nil, err)
		return nil, err
	}
	if len(tl.topics) != 1 || tl.t.fetchCarry.Load() != fetchCarryYes {
		return tl.produceThenPoll(ctx, msgs, acked)
	}
	size, err := carriedSize(msgs)
	if err != nil {
		acked(nil, err)
		return nil, err
	}
	select {
	case tl.sem <- struct{}{}:
	default:
		// Another Poll of the tail is in progress, perhaps for a whole
		// poll window: the records go now, on their own, and this poll
		// waits its turn.
		return tl.produceThenPoll(ctx, msgs, acked)
	}
	// The fetch body, then its "produce" field, in one buffer of the body
	// pool (see sharedBody), released once the fetch is done.
	topic := tl.topics[0]
	pos := tl.pos[topic]
	wait := tl.t.pollWait(ctx)
	shared := newSharedBody(61+len(pos)*(48+len(topic))+size, tl.t.ownClient)
	tl.turn++
	body := restwire.AppendFetchRequestFrom(shared.bytes(), topic, pos, tl.first(pos), timeoutMs(wait))
	body = append(body[:len(body)-1], `,"produce":`...) // without its closing brace
	at := len(body)
	body = appendCarried(body, msgs)
	if !tl.t.fitsCarry(msgs, len(body)-at) {
		shared.release()
		<-tl.sem
		return tl.produceThenPoll(ctx, msgs, acked)
	}
	shared.set(append(body, '}'))
	defer func() { <-tl.sem }()
	defer shared.release()
	if tl.ctx.Err() != nil {
		err := errClosed("poll")
		acked(nil, err)
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		acked(nil, err)
		return nil, err
	}
	got, perr, err := tl.fetchCarrying(ctx, shared, wait, msgs, acked)
	if perr != nil {
		return nil, perr // the produce's error, as acked got it; nothing polled
	}
	out := tl.accept(got)
	switch {
	case tl.ctx.Err() != nil:
		return nil, errClosed("poll")
	case len(out) > 0:
		return out, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, withOp("tail poll", err)
	}
	return []transport.Message{}, nil
}

// produceThenPoll is PollCarrying without carrying: Produce, then Poll.
func (tl *tailer) produceThenPoll(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	out, err := tl.t.Produce(ctx, msgs...)
	acked(out, err)
	if err != nil {
		return nil, err
	}
	return tl.Poll(ctx)
}

// fetchCarrying makes one POST /fetch (its body in shared, which the
// caller releases) carrying records and calls acked once with their
// outcome. It returns the records the fetch read,
// not yet accepted, and the fetch's error, or, when the records were
// produced on their own and that failed, the produce's error as perr
// (then nothing was read). Called with tl.sem held.
func (tl *tailer) fetchCarrying(ctx context.Context, shared *sharedBody, wait time.Duration, records []transport.Message, acked func([]transport.Message, error)) (msgs []transport.Message, perr, err error) {
	// Stopped by Close as well as by ctx.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(tl.ctx, cancel)
	defer stop()

	cp := carried{records: records, acked: acked}
	onResponse := func(resp *http.Response) {
		tl.t.sawFetchAnswer(resp)
		cp.answer(resp)
	}
	ans := carriedAnswer{path: "/fetch"}
	err = tl.t.call(fctx, request{method: http.MethodPost, path: "/fetch", url: tl.t.fetchURL, body: shared.bytes(), shared: shared,
		wait: wait, noRetry: true, onResponse: onResponse}, &ans)
	if cp.written {
		if err != nil {
			return nil, nil, err
		}
		return ans.msgs, nil, nil
	}
	if fctx.Err() != nil {
		// Given up while the request was on its way: it may have been
		// served.
		why := "the caller's context ended meanwhile"
		if tl.ctx.Err() != nil {
			why = "the tail was closed meanwhile"
		}
		cp.lost("fetch", why)
		return nil, nil, err
	}
	// Nothing says the records were written: the server refused the
	// fetch before its produce, failed, or ignores the field (a 2xx answer
	// without the word), or the connection failed (as a Produce that
	// retries after one, this may write them twice).
	if err == nil && tl.t.fetchCarry.Swap(fetchCarryNo) != fetchCarryNo {
		tl.t.log.Warn("upstash: the server took a fetch carrying records but did not say it wrote them; producing them on their own from now on")
	}
	if perr := cp.alone(ctx, tl.t); perr != nil {
		return nil, perr, nil // nothing polled: the fetched records are read again
	}
	return ans.msgs, nil, err
}
