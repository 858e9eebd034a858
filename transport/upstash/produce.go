package upstash

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// producer coalesces concurrent Produce calls into POST /produce requests.
//
// There is at most one flusher and so at most one produce request in
// flight. A call that finds nothing in flight or queued is its own flusher:
// it sends its request itself. Calls that arrive while a request is in
// flight queue up; when it returns, a flusher goroutine sends everything
// queued (up to the batch caps) in the next request. No linger: an idle
// single caller's request goes out at once. The flusher goroutine exits
// when the queue is empty, so an idle Transport runs no goroutine.
type producer struct {
	t *Transport

	mu        sync.Mutex
	closed    bool
	queue     []*produceCall
	flushDone chan struct{} // non-nil while a flusher runs; closed when it exits
}

type callState int

const (
	callQueued callState = iota
	callSent
	callAbandoned
)

type produceCall struct {
	ctx  context.Context
	msgs []transport.Message
	body []byte // msgs as a JSON array of TopicMessages: the body of a request of this call alone
	// shared holds body's buffer, released at finish.
	shared *sharedBody
	state  callState // guarded by producer.mu
	// batch is the request the call was taken into, when taken with
	// others (set with state callSent, under producer.mu).
	batch *batchWatch

	// done receives one value when the call is finished (out and err
	// set); the call is no longer touched by the producer after that.
	done chan struct{}
	out  []transport.Message
	err  error
}

// callPool recycles the produceCalls (and their done channels) whose
// caller took their outcome from done: nothing else refers to them then.
var callPool = sync.Pool{New: func() any { return &produceCall{done: make(chan struct{}, 1)} }}

// finish completes the call; its caller may reuse it at once, so the
// producer does not touch it afterwards.
func (c *produceCall) finish(out []transport.Message, err error) {
	c.shared.release() // nothing reads body after this but an HTTP request still holding it
	c.out, c.err = out, err
	c.done <- struct{}{}
}

// outcome returns the outcome of a call whose done value its caller has
// received, and puts the call back in callPool.
func (c *produceCall) outcome() ([]transport.Message, error) {
	out, err := c.out, c.err
	done := c.done
	*c = produceCall{done: done}
	callPool.Put(c)
	return out, err
}

func (p *producer) init(t *Transport) { p.t = t }

// Produce appends msgs in order with one POST /produce (shared with
// concurrent callers) and returns them with Partition, Offset and Time
// filled in from the server's answer; ManualPartition is false on them.
//
// Messages are validated first: an empty topic, a negative manual partition
// or a key, value or header that is not valid UTF-8 (the REST API carries
// them as JSON strings) is refused with an error wrapping
// transport.ErrInvalid, and nothing is sent. Server refusals wrap
// transport.ErrUnknownTopic (404), transport.ErrMessageTooLarge (413) and
// transport.ErrInvalid (400) and are never retried; 5xx, 429 and connection
// errors are retried within ctx.
//
// Duplicates: if a response is lost (connection reset, attempt timeout) the
// retry may append the records a second time. If ctx ends while the request
// is in flight, Produce returns ctx's error and the records may or may not
// have been appended.
//
// Produce with no msgs returns at once. After Close it returns an error
// wrapping transport.ErrClosed.
func (t *Transport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if t.isClosed() {
		return nil, errClosed("produce")
	}
	if len(msgs) == 0 {
		return []transport.Message{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := 2
	for i := range msgs {
		n, err := checkProduce(i, &msgs[i])
		if err != nil {
			return nil, err
		}
		size += n + 1
	}
	shared := newSharedBody(size+size/8, t.ownClient)
	body := append(shared.bytes(), '[')
	for i := range msgs {
		if i > 0 {
			body = append(body, ',')
		}
		body = restwire.AppendTopicMessage(body, &msgs[i])
	}
	body = append(body, ']')
	shared.set(body)
	call := callPool.Get().(*produceCall)
	call.ctx, call.msgs, call.body, call.shared = ctx, msgs, body, shared
	return t.producer.do(call)
}

func (p *producer) do(call *produceCall) ([]transport.Message, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosed("produce")
	}
	switch {
	case p.flushDone == nil && len(p.queue) == 0:
		// Nothing in flight or queued: this caller sends its request
		// itself, without handing it to a flusher goroutine and back (two
		// goroutine switches a call, the most of a lone caller's). Alone
		// in its batch, its request ends with its ctx, as a flusher's
		// would.
		call.state = callSent
		done := make(chan struct{})
		p.flushDone = done
		p.t.wg.Add(1)
		p.mu.Unlock()
		p.send([]*produceCall{call})
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.flushDone = nil
			p.mu.Unlock()
			close(done)
			p.t.wg.Done()
		} else {
			// Calls queued meanwhile: a flusher takes over, with done.
			p.mu.Unlock()
			go p.flush(done)
		}
		<-call.done // send finished it
		return call.outcome()
	case p.flushDone == nil:
		p.queue = append(p.queue, call)
		p.flushDone = make(chan struct{})
		p.t.wg.Add(1)
		go p.flush(p.flushDone)
	default:
		p.queue = append(p.queue, call)
	}
	p.mu.Unlock()

	select {
	case <-call.done:
		return call.outcome()
	case <-call.ctx.Done():
	}
	p.mu.Lock()
	sent, batch := call.state == callSent, call.batch
	if call.state == callQueued {
		call.state = callAbandoned
		for i, c := range p.queue {
			if c == call {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
	}
	p.mu.Unlock()
	if batch != nil {
		batch.gaveUp()
	}
	if sent {
		select {
		case <-call.done: // finished meanwhile: report what happened
			return call.out, call.err
		default:
		}
		return nil, fmt.Errorf("upstash: produce: %w (the request was in flight: the records may have been appended)", call.ctx.Err())
	}
	return nil, call.ctx.Err()
}

// flush sends batches until the queue is empty.
func (p *producer) flush(done chan struct{}) {
	defer p.t.wg.Done()
	defer close(done)
	for {
		p.mu.Lock()
		batch := p.take()
		if len(batch) == 0 {
			p.flushDone = nil
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.send(batch)
	}
}

// take removes from the queue the calls of the next request: whole calls,
// in arrival order, up to the caps (the first call is always taken). Called
// with p.mu held.
func (p *producer) take() []*produceCall {
	var (
		batch []*produceCall
		n     int
		size  int
	)
	cfg := &p.t.cfg
	i := 0
	for ; i < len(p.queue); i++ {
		c := p.queue[i]
		if len(batch) > 0 && (n+len(c.msgs) > cfg.maxBatch || size+len(c.body) > cfg.maxBatchBytes) {
			break
		}
		c.state = callSent
		batch = append(batch, c)
		n += len(c.msgs)
		size += len(c.body)
	}
	rest := copy(p.queue, p.queue[i:])
	clear(p.queue[rest:])
	p.queue = p.queue[:rest]
	if len(batch) > 1 {
		w := &batchWatch{left: len(batch)}
		for _, c := range batch {
			c.batch = w
		}
	}
	return batch
}

// send makes one POST /produce for batch and completes its calls. If the
// server refuses the whole request (4xx) and it holds several calls, each
// call is resent alone so that one caller's bad message (unknown topic, too
// large) does not fail the others.
func (p *producer) send(batch []*produceCall) {
	ctx, release := batchContext(p.t.ctx, batch)
	defer release()

	// One call's body is the request's; several calls' arrays are joined
	// into one.
	body, shared, total := batch[0].body, batch[0].shared, len(batch[0].msgs)
	if len(batch) > 1 {
		size := 0
		for _, c := range batch {
			size += len(c.body)
		}
		shared = newSharedBody(size, batch[0].shared.pooled)
		defer shared.release()
		body = append(shared.bytes(), '[')
		for i, c := range batch {
			if i > 0 {
				body = append(body, ',')
				total += len(c.msgs)
			}
			body = append(body, c.body[1:len(c.body)-1]...)
		}
		body = append(body, ']')
		shared.set(body)
	}

	var ans metadataAnswer
	err := p.t.call(ctx, request{method: http.MethodPost, path: "/produce", url: p.t.produceURL, body: body, shared: shared, limit: sizedLimit(total)}, &ans)
	meta := ans.meta
	if err == nil && len(meta) != total {
		err = fmt.Errorf("upstash: POST /produce: server answered %d results for %d messages: %w", len(meta), total, transport.ErrOutcomeUnknown)
	}
	if err == nil {
		err = checkAnswer(batch, meta)
	}
	if err != nil {
		var he *Error
		if len(batch) > 1 && errors.As(err, &he) && !he.Temporary() && he.Status >= 400 && he.Status < 500 {
			for _, c := range batch {
				p.send([]*produceCall{c})
			}
			return
		}
		closed := errors.Is(err, context.Canceled) && p.t.ctx.Err() != nil
		if closed {
			err = fmt.Errorf("%w: %w", errClosed("produce"), err)
		}
		// Retries that ran out at the deadline against a server that failed
		// every attempt keep their error, the server's last answer in it
		// (transport.ErrUnavailable, and the deadline), whether the
		// deadline had passed by the time they stopped or was only about
		// to.
		unavailable := errors.Is(err, transport.ErrUnavailable)
		for _, c := range batch {
			if cerr := c.ctx.Err(); cerr != nil && !closed && !unavailable && isContextErr(err) {
				// Every caller gave up, which cancelled the request: each
				// learns its own reason (a deadline is not a cancellation).
				c.finish(nil, fmt.Errorf("upstash: produce: %w (the request was in flight: the records may have been appended)", cerr))
				continue
			}
			c.finish(nil, err)
		}
		return
	}
	for _, c := range batch {
		n := len(c.msgs)
		c.finish(c.result(meta[:n]))
		meta = meta[n:]
	}
}

// checkAnswer reports an answer to a POST /produce that cannot be true of
// what was sent (results in the order of the messages, one each): a result
// with a negative partition or offset, on another partition than the one a
// message pinned, or offsets not increasing within a partition in the order
// sent (one request is appended in order, so results swapped between the
// messages or the coalesced callers of a batch show as a step back).
// Results carrying a per-message error are left to result.
func checkAnswer(batch []*produceCall, meta []restwire.Metadata) error {
	last := make(map[transport.TopicPartition]int64, 1)
	i := 0
	for _, c := range batch {
		for j := range c.msgs {
			m, md := &c.msgs[j], meta[i]
			i++
			if md.Error != "" {
				continue
			}
			// Each refusal wraps transport.ErrOutcomeUnknown: the server did
			// take the request, and may have appended the records.
			switch {
			case md.Offset == -1 && md.Partition >= 0 && (!m.ManualPartition || md.Partition == m.Partition):
				// Kafka's "unknown offset" (a producer with acks=0): the
				// records were sent, their positions are not known.
				return fmt.Errorf("upstash: POST /produce: result %d has no offset (acks=0?): %w", i-1, transport.ErrOutcomeUnknown)
			case md.Partition < 0 || md.Offset < 0:
				return fmt.Errorf("upstash: POST /produce: result %d has partition %d, offset %d: the server's answer is not believable: %w", i-1, md.Partition, md.Offset, transport.ErrOutcomeUnknown)
			case m.ManualPartition && md.Partition != m.Partition:
				return fmt.Errorf("upstash: POST /produce: result %d is on partition %d, but the message was pinned to partition %d: %w", i-1, md.Partition, m.Partition, transport.ErrOutcomeUnknown)
			}
			tp := transport.TopicPartition{Topic: m.Topic, Partition: md.Partition}
			if prev, ok := last[tp]; ok && md.Offset <= prev {
				return fmt.Errorf("upstash: POST /produce: result %d has offset %d on %s/%d after offset %d: results out of order: %w", i-1, md.Offset, m.Topic, md.Partition, prev, transport.ErrOutcomeUnknown)
			}
			last[tp] = md.Offset
		}
	}
	return nil
}

// result fills in the caller's messages from their part of the answer.
func (c *produceCall) result(meta []restwire.Metadata) ([]transport.Message, error) {
	out := make([]transport.Message, len(c.msgs))
	var errs []error
	for i, m := range meta {
		msg := c.msgs[i]
		if m.Error != "" {
			errs = append(errs, fmt.Errorf("message %d: %s", i, m.Error))
		}
		if m.Topic != "" && m.Topic != msg.Topic {
			errs = append(errs, fmt.Errorf("message %d: server answered for topic %q, sent to %q", i, m.Topic, msg.Topic))
		}
		msg.Partition, msg.Offset, msg.ManualPartition = m.Partition, m.Offset, false
		if m.Timestamp > 0 { // -1: not available
			msg.Time = time.UnixMilli(m.Timestamp)
		}
		out[i] = msg
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("upstash: POST /produce: %w", errors.Join(errs...))
	}
	return out, nil
}

// batchContext returns a context for a batch's request: it ends when the
// transport closes or when every caller of the batch has given up, so no
// caller's request is cut short by another's deadline and no request runs
// on when nobody waits for it. When every caller has a deadline it carries
// the latest, so retries know when waiting is pointless (a Retry-After past
// it gives up at once).
//
// A batch of one call (every call of a lone caller) takes the cheaper
// shape with the same ends: the caller's context, which carries its
// deadline, cut short when parent ends. A batch of several calls is
// watched by its callers themselves: each one's Produce, which waits on
// its context anyway, tells the batch's batchWatch when it gives up (see
// producer.do), and the last one to give up cancels the request; no
// callback is registered on the callers' contexts.
func batchContext(parent context.Context, batch []*produceCall) (context.Context, func()) {
	if len(batch) == 1 {
		ctx, cancel := context.WithCancel(batch[0].ctx)
		stop := context.AfterFunc(parent, cancel)
		return ctx, func() {
			stop()
			cancel()
		}
	}
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			latest = time.Time{}
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	var (
		ctx    context.Context
		cancel context.CancelFunc
	)
	if latest.IsZero() {
		ctx, cancel = context.WithCancel(parent)
	} else {
		ctx, cancel = context.WithDeadline(parent, latest)
	}
	batch[0].batch.watch(cancel)
	return ctx, cancel
}

// batchWatch counts the callers of a batch of several calls that have not
// given up, and cancels the batch's request when none is left. Safe for
// concurrent use.
type batchWatch struct {
	mu     sync.Mutex
	left   int                // callers that have not given up
	cancel context.CancelFunc // the request's, once made
}

// watch sets the request's cancel function, calling it at once if every
// caller has given up already.
func (w *batchWatch) watch(cancel context.CancelFunc) {
	w.mu.Lock()
	w.cancel = cancel
	left := w.left
	w.mu.Unlock()
	if left == 0 {
		cancel()
	}
}

// gaveUp records that one caller of the batch stopped waiting for it.
func (w *batchWatch) gaveUp() {
	w.mu.Lock()
	w.left--
	cancel := w.cancel
	left := w.left
	w.mu.Unlock()
	if left == 0 && cancel != nil {
		cancel()
	}
}

// close fails queued calls with ErrClosed and waits, up to the close
// timeout, for an in-flight request to finish.
func (p *producer) close() {
	p.mu.Lock()
	p.closed = true
	queued := p.queue
	p.queue = nil
	for _, c := range queued {
		c.state = callAbandoned
	}
	done := p.flushDone
	p.mu.Unlock()
	for _, c := range queued {
		c.finish(nil, errClosed("produce"))
	}
	if done != nil {
		timer := time.NewTimer(p.t.cfg.closeTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			p.t.log.Warn("upstash: close: produce request still in flight after close timeout; cancelling it")
		}
	}
}

// isContextErr reports whether err comes from an ended context.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
