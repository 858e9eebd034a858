package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Client calls services over a transport.
//
// One reply reader per Client serves all its calls: it is positioned on the
// reply topic before NewClient returns, so the reply to a call made at once
// cannot be missed. Replies are matched to calls by correlation id; replies
// meant for other instances sharing the reply topic are ignored, and replies
// arriving after their call gave up are counted (Stats) and logged, at most
// one line a second (a peer decides how many arrive).
//
// A call that is about to wait for its reply reads the reply topic itself
// when no other call does (see readSlot in slot.go): it delivers the other
// calls' replies as it goes and hands reading on when its own reply comes.
// When the reply consumer is a transport.CarryingPoller, such a call's
// request is produced by its first poll. A call made with WithResend
// leaves reading to the others and to the client's background reader.
//
// A Client is safe for concurrent use. After Close, every method returns an
// error wrapping ErrClosed.
type Client struct {
	t   transport.Transport
	p   producer // t, with its ProduceOwned when it has one
	cfg clientConfig
	log *slog.Logger

	replies transport.Consumer
	cp      transport.CarryingPoller // replies, when it can carry records; else nil
	ctx     context.Context          // canceled by Close
	cancel  context.CancelFunc
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu        sync.Mutex
	pending   map[string]*pendingCall
	abandoned recentIDs
	closed    bool
	slot      readSlot // who reads the reply topic (slot.go); under mu

	noticeOnce sync.Once
	noticeErr  error

	late       atomic.Int64
	foreign    atomic.Int64
	lateLog    logLimiter
	resent     atomic.Int64
	dupNotices atomic.Int64
}

type pendingCall struct {
	ch       chan *Reply // receives &reply
	reply    Reply       // written by the reply reader before it sends on ch
	progress func(*Reply)
	timer    *time.Timer // the call's deadline, reused with the pendingCall
	// lc is the call's context, reused with the pendingCall while nobody
	// built it (see end).
	lc *lazyCtx
	// answered says the reply came: pc goes back to the pool when the
	// call ends.
	answered bool
	// req is the produce's one-record batch: a record passed to the
	// transport's variadic Produce would otherwise escape to the heap.
	req [1]transport.Message

	// The call's part in the reading slot (slot.go), under Client.mu:
	// its role, whether the slot was handed to it with slotToken on ch
	// (not yet taken up), the slot's take count when it got it, and its
	// links in the wait list.
	role         callRole
	handed       bool
	gen          uint64
	prevW, nextW *pendingCall

	// A carried request's produce outcome (acked): ackErr is set before
	// ackState says ackFailed. ackFn is acked, made once per pendingCall.
	ackState atomic.Int32
	ackErr   error
	ackFn    func([]transport.Message, error)

	// The quiet wait (see awaitQuiet), under Client.mu: quiet says the
	// call waits on ch alone, so that its deadline (expiry, a
	// time.AfterFunc timer that runs expired) and Close end it by
	// removing it from pending and sending endToken on ch, with the
	// call's error in endErr. client, id and topic are the call's, for
	// them.
	quiet  bool
	client *Client
	id     string
	topic  string
	expiry *time.Timer
	endErr error
}

var callPool = sync.Pool{New: func() any {
	pc := &pendingCall{ch: make(chan *Reply, 1), lc: new(lazyCtx)}
	pc.ackFn = pc.acked
	pc.expiry = time.AfterFunc(time.Hour, pc.expired)
	pc.expiry.Stop()
	return pc
}}

// endToken, sent on a quiet call's channel, ends it with pendingCall.endErr
// (see awaitQuiet).
var endToken Reply

// NewClient returns a Client on t. It positions the reply reader before
// returning: with a transport.Tailer it tails the reply topic, otherwise it
// joins a consumer group of its own; with WithoutReplies it reads nothing.
// Options are validated here.
func NewClient(t transport.Transport, opts ...ClientOption) (*Client, error) {
	if t == nil {
		return nil, errors.New("rpc: NewClient: nil transport")
	}
	cfg := clientDefaults()
	for _, o := range opts {
		o.applyClient(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var replies transport.Consumer
	var err error
	switch tl, ok := t.(transport.Tailer); {
	case cfg.noReplies:
	case ok:
		replies, err = tl.Tail(ctx, cfg.replyTopic)
	default:
		replies, err = t.Subscribe(ctx, transport.Subscription{
			Group:  cfg.replyTopic + "." + uuid.NewString(),
			Topics: []string{cfg.replyTopic},
			Start:  transport.StartLatest,
		})
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("rpc: NewClient: reply reader on %q: %w", cfg.replyTopic, err)
	}
	c := &Client{
		t:         t,
		p:         newProducer(t),
		cfg:       cfg,
		log:       cfg.logger.With("rpc.client", cfg.name),
		replies:   replies,
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		pending:   make(map[string]*pendingCall),
		abandoned: newRecentIDs(cfg.lateMemory),
	}
	if replies != nil {
		c.initSlot()
		c.wg.Add(1)
		go c.readReplies()
	}
	return c, nil
}

// Call sends req to topic and waits for the reply. req is encoded as JSON
// ([]byte and json.RawMessage are sent as they are). The call's deadline is
// the earliest of ctx's, WithTimeout's and, when neither is set, the client's
// WithCallTimeout (default 30s).
//
// A handler error comes back as an *Error with the handler's code and
// message; a timeout as an *Error with CodeDeadlineExceeded wrapping
// ErrTimeout.
func (c *Client) Call(ctx context.Context, topic string, req any, opts ...CallOption) (*Reply, error) {
	rh := new(ownedReply)
	r := &rh.Reply
	if err := c.call(ctx, topic, req, opts, r); err != nil {
		return nil, ownDetails(err)
	}
	// The caller owns what Call returns. On the embedded broker the record
	// read is the server's own reply, shared with its dedup window and
	// marker, so a caller writing into it would change what the server
	// answers a duplicate with: give it copies. (The typed Call decodes
	// and never exposes the bytes, so it pays nothing.) The headers of a
	// successful reply fit the room allocated with the Reply.
	r.Value = bytes.Clone(r.Value)
	if n := len(r.Headers); n > 0 && n <= len(rh.hdrs) {
		r.Headers = append(rh.hdrs[:0:n], r.Headers...)
	} else {
		r.Headers = slices.Clone(r.Headers)
	}
	return r, nil
}

// ownDetails gives the caller of Call its own copy of the details of an
// error reply: like the reply's Value (see Call), they are the record
// read, which on the embedded broker is the broker's stored reply. Only
// an error reply's *Error, made for this call when the reply was read
// (Reply.fill), carries details that are not the caller's already.
func ownDetails(err error) error {
	if e, ok := err.(*Error); ok && len(e.details) > 0 {
		e.details = bytes.Clone(e.details)
	}
	return err
}

// ownedReply is a Reply that Call returns and room for a copy of its
// headers, in one allocation: as many as a successful reply has (see
// replyMessageIn: 6, and a trace context), 424 bytes, a 448-byte size
// class. An error reply's, and a foreign server's with more, are copied
// apart.
type ownedReply struct {
	Reply
	hdrs [7]transport.Header
}

// call is Call, with the reply written to out.
func (c *Client) call(ctx context.Context, topic string, req any, opts []CallOption, out *Reply) error {
	if c.replies == nil {
		if c.isClosed() {
			return NewError(CodeUnavailable, ErrClosed) // as a closed client's every call
		}
		return NewError(CodeFailedPrecondition, fmt.Errorf("rpc: call %s: %w", topic, ErrNoReplies))
	}
	cc, err := newCallConfig(opts)
	if err != nil {
		return err
	}
	payload, err := marshalPayload(req)
	if err != nil {
		return err
	}
	pc := callPool.Get().(*pendingCall)
	now := time.Now() // one clock reading for the deadline, the id and the timeout header
	lc := c.callContext(pc.lc, ctx, cc.timeout, now)
	defer pc.end()
	ctx = lc

	id := newIDAt(now)
	pc.progress = cc.progress
	dl, _ := lc.Deadline()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return NewError(CodeUnavailable, ErrClosed)
	}
	c.pending[id] = pc
	pc.client, pc.id, pc.topic = c, id, topic
	// A transport that can take the record over (ProduceOwned: the
	// embedded broker) has no exchange to save by carrying it, and its
	// carried produce would copy it: it produces, then the call polls.
	// Carried only if few calls are pending (see carryMaxPending).
	owned := !callerOwned(req)
	carry := c.cp != nil && (!owned || c.p.own == nil) && len(c.pending) <= carryMaxPending
	join := c.joinLocked(pc, dl, true, carry)
	// A call that resends, or whose context can be canceled, waits in a
	// select; so does one that waits for the background reader to hand
	// it the slot (awaitSlot takes what comes on its channel for the
	// slot).
	pc.quiet = c.cfg.resend == 0 && lc.parent.Done() == nil && join != joinPreempt
	c.mu.Unlock()

	msg := c.request(ctx, now, topic, id, KindRequest, c.cfg.replyTopic, payload, &cc)
	if o := c.cfg.observer; o != nil {
		msg, done := observeCall(o, lc.parent, msg)
		err := c.exchange(lc, pc, id, msg, owned, join, carry, out)
		observed(done, out, err)
		return err
	}
	return c.exchange(lc, pc, id, msg, owned, join, carry, out)
}

// end releases the call's context and, when the call is done with pc
// (answered: a call that gave up may still get a late reply in it),
// returns pc to the pool. A context somebody built (waited on: the
// embedded broker never does, the REST transport's produce queue does) may
// still be held by them: it stays theirs, and pc goes back to the pool
// with a new one.
func (pc *pendingCall) end() {
	pc.lc.release()
	if !pc.answered {
		return
	}
	if pc.lc.inner.Load() != nil {
		pc.lc = new(lazyCtx)
	}
	if pc.expiry == nil {
		return // its deadline fired as the reply came: expired may still look at pc (stopExpiry)
	}
	pc.quiet, pc.client, pc.id, pc.topic = false, nil, "", ""
	pc.answered = false
	callPool.Put(pc)
}

// observeCall tells o about the request msg and returns msg as o left it.
// msg is taken and returned by value so that only an observed call pays
// for it escaping to the heap (o gets a pointer to it); not inlined, for
// the same reason.
//
//go:noinline
func observeCall(o Observer, ctx context.Context, msg transport.Message) (transport.Message, func(*Reply, error)) {
	done := o.CallStarted(ctx, &msg)
	return msg, done
}

// observed ends an observed call: done gets a copy of its reply (out,
// valid when err is nil), so that out does not escape for the calls that
// are not observed.
func observed(done func(*Reply, error), out *Reply, err error) {
	if err != nil {
		done(nil, err)
		return
	}
	r := *out
	done(&r, nil)
}

// exchange produces the request msg of the call id and waits for its
// reply, written to out. owned is produce's. join says what part the call
// has in the reading slot: one that holds it reads its reply itself and,
// when the reply consumer can carry records, produces msg with its first
// poll, if carry says so (see call).
func (c *Client) exchange(lc *lazyCtx, pc *pendingCall, id string, msg transport.Message, owned bool, join joinResult, carry bool, out *Reply) error {
	ctx, topic := context.Context(lc), msg.Topic
	var (
		sent transport.Message
		err  error
	)
	holding, handed := join == joinHold, false
	if join == joinPreempt && carry {
		// The background reader is handing the slot over: worth waiting
		// for, to carry the request (over REST, one exchange fewer).
		ok, err := c.awaitSlot(lc, pc, id, topic)
		if !ok {
			return err
		}
		holding, handed = true, true
	}
	if holding && carry {
		pc.req[0] = msg
		res, rerr := c.readOwn(lc, pc, id, topic, out, handed, true)
		switch res {
		case readDone:
			return rerr
		case readWait:
			// Written (or perhaps written): wait for the reply. Resend is
			// off (a call with WithResend never reads), so the partition
			// written to is not needed.
			if pc.quiet { // see the end
				return c.awaitQuiet(lc, pc, id, topic, out)
			}
			return c.await(lc, pc, msg, out)
		}
		// The carried produce failed and the slot was given up: a failed
		// first attempt of produce, whose retries follow.
		holding = false
		sent, err = c.retryProduce(ctx, msg, owned, &pc.req, rerr)
		join = joinLater
	} else {
		sent, err = c.produce(ctx, msg, owned, &pc.req)
	}
	if join == joinLater && (err == nil || errors.Is(err, transport.ErrOutcomeUnknown)) {
		dl, _ := lc.Deadline()
		holding = c.joinSent(pc, id, dl)
	}
	switch {
	case errors.Is(err, transport.ErrOutcomeUnknown):
		// The request may have been written: wait for its reply (and
		// resend it, with WithResend) rather than give up on it.
		c.log.Debug("rpc: request may not have been written; waiting for its reply", "topic", topic, "id", id, "err", err)
	case err != nil:
		c.leave(pc, id, false)
		return c.sendErr("call", topic, err)
	default:
		// A resend goes to the partition of the first copy, so that the
		// server that owns it (and knows the first copy is running) gets
		// it, even for a keyless request that the transport would spread
		// elsewhere.
		msg.Partition, msg.ManualPartition = sent.Partition, true
	}
	if holding {
		if res, err := c.readOwn(lc, pc, id, topic, out, false, false); res == readDone {
			return err
		}
	}
	if pc.quiet {
		// A quiet call (the common case) goes to awaitQuiet from here,
		// not through await, whose frame is large: a call waits parked,
		// and each garbage collection scans the stack of every waiting
		// call (with 4,096 callers waiting on the embedded broker, 2,284
		// bytes each instead of 2,673, read from /gc/scan/stack:bytes).
		return c.awaitQuiet(lc, pc, id, topic, out)
	}
	return c.await(lc, pc, msg, out)
}

// await waits for the reply of the call whose request is msg, resending
// msg as WithResend says, until the call's deadline, its context's end or
// Close. The reply is written to out. A quiet call waits in awaitQuiet
// instead.
func (c *Client) await(lc *lazyCtx, pc *pendingCall, msg transport.Message, out *Reply) error {
	var ctx context.Context = lc
	topic := msg.Topic
	id, _ := msg.Header(HeaderID)
	var resend <-chan time.Time
	if c.cfg.resend > 0 {
		t := time.NewTicker(c.cfg.resend)
		defer t.Stop()
		resend = t.C
	}
	dl, _ := lc.Deadline()
	copied := false // msg.Headers is a copy of the first attempt's, which may have been handed over
	if pc.timer == nil {
		pc.timer = time.NewTimer(time.Until(dl))
	} else {
		pc.timer.Reset(time.Until(dl))
	}
	for {
		select {
		case r := <-pc.ch:
			if r == &slotToken {
				// Handed the slot: read, until the reply comes or a poll
				// fails (then wait here, passively).
				if res, err := c.readOwn(lc, pc, id, topic, out, true, false); res == readDone {
					stopTimer(pc.timer)
					return err
				}
				continue
			}
			return replied(pc, r, out)
		case <-resend:
			// Same id: the server's dedup window answers a request it has
			// handled with the stored reply instead of running it again.
			c.resent.Add(1)
			if o := c.cfg.observer; o != nil {
				o.Counted(Event{Kind: EventResend, Topic: topic})
			}
			// The budget travels as relative time from the record's own
			// timestamp: a resent record says what is left now. The first
			// attempt's headers may belong to the transport now
			// (ProduceOwned): rewrite a copy.
			if !copied {
				msg.Headers, copied = slices.Clone(msg.Headers), true
			}
			setTimeoutHeader(msg.Headers, dl)
			// One attempt, bounded by the resend interval, so that a
			// transport that keeps failing cannot hold back a reply that
			// came meanwhile: the next tick tries again.
			rctx, cancel := context.WithTimeout(ctx, c.cfg.resend)
			if _, err := c.t.Produce(rctx, msg); err != nil && ctx.Err() == nil {
				c.log.Debug("rpc: resending request failed", "topic", topic, "id", id, "err", err)
			}
			cancel()
		case <-pc.timer.C:
			select {
			case r := <-pc.ch: // the reply came with the deadline: it wins
				if r != &slotToken {
					return replied(pc, r, out)
				}
				// The slot, with the deadline: leave passes it on.
			default:
			}
			c.leave(pc, id, true) // pc is not reused: a reply may still land in it
			return callTimedOut(topic)
		case <-lc.parent.Done():
			c.leave(pc, id, true)
			pc.timer.Stop()
			return callEnded(topic, lc.parent.Err())
		case <-c.done:
			c.leave(pc, id, false)
			return callClosed(topic)
		}
	}
}

// awaitQuiet is await for a call that neither resends nor has a context
// that can be canceled (pendingCall.quiet): it waits on its channel alone,
// which costs a waiting call far less than a select over its channel, a
// timer's and the client's (a timer channel in a select is put in the
// timer heap and taken out again each time it blocks; the client's done
// channel is shared by every waiting call). What the select's other cases
// did comes on the channel instead: the call's deadline (expired) and
// Close each remove a call that waits from pending and send it endToken.
// Neither touches a call that holds the slot (or was handed it): it reads
// with the slot's context, which the deadline (slotExpired) and Close
// cancel, and readOwn ends it, also when it gives the slot up after a
// failed poll and one of them came meanwhile.
func (c *Client) awaitQuiet(lc *lazyCtx, pc *pendingCall, id, topic string, out *Reply) error {
	dl, _ := lc.Deadline()
	pc.expiry.Reset(time.Until(dl))
	for {
		r := <-pc.ch
		switch r {
		case &slotToken:
			// Handed the slot: read, until the reply comes or a poll
			// fails (then wait here, passively).
			if res, err := c.readOwn(lc, pc, id, topic, out, true, false); res == readDone {
				pc.stopExpiry()
				return err
			}
		case &endToken:
			// pc is not reused: expired may still be running. Ended by
			// Close, its timer would keep pc (and the client) alive until
			// the deadline.
			pc.expiry.Stop()
			return pc.endErr
		default:
			pc.stopExpiry()
			return replied(pc, r, out)
		}
	}
}

// stopExpiry stops a quiet call's deadline timer. If it fired, expired may
// still look at pc, which then must not go back to the pool.
func (pc *pendingCall) stopExpiry() {
	if !pc.expiry.Stop() {
		pc.expiry = nil // see pendingCall.end
	}
}

// expired ends a quiet call at its deadline (see awaitQuiet), unless its
// reply came first or it holds the slot.
func (pc *pendingCall) expired() {
	c := pc.client
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[pc.id] != pc || pc.role == roleHolder {
		return
	}
	c.endQuietLocked(pc, true, callTimedOut(pc.topic))
}

// endQuietLocked ends the quiet call pc, pending and not holding the slot,
// with err: it leaves (abandoned says whether its late reply may still
// come) and gets endToken on its channel, which is empty: no reply is on
// it (pc was pending, and a reply is sent after its call is removed) and
// no slot token (pc does not hold the slot).
func (c *Client) endQuietLocked(pc *pendingCall, abandoned bool, err error) {
	c.leaveCallLocked(pc, pc.id, abandoned)
	pc.endErr = err
	pc.ch <- &endToken
}

// replied ends a call with its reply r (pc's), copied to out, and readies
// pc for the pool.
func replied(pc *pendingCall, r *Reply, out *Reply) error {
	*out = *r
	*r = Reply{} // the pool keeps no reply's memory alive
	pc.req[0] = transport.Message{}
	pc.progress = nil
	if pc.timer != nil {
		stopTimer(pc.timer)
	}
	pc.answered = true // back to the pool when the call ends (pendingCall.end)
	if out.Err != nil {
		return out.Err
	}
	return nil
}

// carryMaxPending is the most calls pending (this one included) for a
// reading call to carry its request. With more, the requests of the
// concurrent calls are better produced together (a transport batches
// concurrent produces into one exchange, as the REST transport does) than
// each carried by a poll of its own.
const carryMaxPending = 4

// stopTimer stops t and empties its channel if it fired, for the next
// call of the pendingCall it belongs to.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// produce writes msg, retrying transient transport errors with
// exponential backoff within ctx and the client's call timeout. ctx must
// also end when the client is closed (the lazy call contexts of Call and
// send do; sendErr then reports ErrClosed). A retry after a lost response
// can write the record twice; servers drop the copy by its id. owned says
// msg may be handed over to the transport (see ownedProducer). It returns
// msg as written. batch is the produce's scratch batch (the transport may
// fill it in place): every attempt starts from msg again.
func (c *Client) produce(ctx context.Context, msg transport.Message, owned bool, batch *[1]transport.Message) (transport.Message, error) {
	// The first attempt is made outside retry: the common case, a produce
	// that works, then costs no closure.
	batch[0] = msg
	out, err := c.p.produce(ctx, owned, batch[:]...)
	if err == nil {
		return written(out, msg), nil
	}
	return c.retryProduce(ctx, msg, owned, batch, err)
}

// retryProduce is produce after its first attempt failed with err (made
// by produce, or carried by a poll): it retries as the first attempt's
// error and the backoff say, and returns what produce returns.
func (c *Client) retryProduce(ctx context.Context, msg transport.Message, owned bool, batch *[1]transport.Message, err error) (transport.Message, error) {
	var out []transport.Message
	p := clientProduceBackoff
	p.elapsed = c.cfg.timeout
	first := true
	err = retry(ctx, p, func() error {
		if !first {
			batch[0] = msg
			out, err = c.p.produce(ctx, owned, batch[:]...)
		}
		first = false
		if err != nil && (permanentProduceErr(err) || ctx.Err() != nil) {
			return backoff.Permanent(err)
		}
		return err
	}, nil)
	if err != nil {
		return msg, err
	}
	return written(out, msg), nil
}

// written is the record Produce returned for msg, or msg itself if the
// transport returned none.
func written(out []transport.Message, msg transport.Message) transport.Message {
	if len(out) == 1 {
		return out[0]
	}
	return msg
}

// sendErr is the error of a request that could not be produced: ErrClosed
// when Close ended it.
func (c *Client) sendErr(what, topic string, err error) error {
	if c.isClosed() {
		if !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("%w (%w)", ErrClosed, err)
		}
		return NewError(CodeUnavailable, fmt.Errorf("rpc: %s %s: %w", what, topic, err))
	}
	return wrapCallErr(fmt.Errorf("rpc: %s %s: %w", what, topic, err))
}

// clientProduceBackoff spaces a client's produce attempts; its elapsed cap
// is the client's call timeout.
var clientProduceBackoff = backoffPolicy{initial: 10 * time.Millisecond, max: time.Second}

// Call is the typed form of Client.Call: it decodes the reply into Resp.
func Call[Resp any](ctx context.Context, c *Client, topic string, req any, opts ...CallOption) (Resp, error) {
	var r Reply // on the stack: the typed call allocates no Reply
	if err := c.call(ctx, topic, req, opts, &r); err != nil {
		var zero Resp
		return zero, ownDetails(err)
	}
	// r.Decode(&out), without out escaping to the heap.
	out, err := decodeTyped[Resp](r.Value)
	if err != nil {
		return out, r.decodeErr(err)
	}
	return out, nil
}

// Notify sends req to topic without waiting for anything: no reply is
// asked for. The value is the plain JSON payload, so a non-Go consumer reads
// it as it is; WithKey sets the key (the producer's name in the Laravel article's scheme).
func (c *Client) Notify(ctx context.Context, topic string, req any, opts ...CallOption) error {
	_, err := c.send(ctx, topic, KindNotify, "", req, opts)
	return err
}

// Send sends a request whose completion notice goes to the client's durable
// notice topic instead of to this call: it survives a restart of the caller
// and is handled by the NoticeHandler given to OnNotice, by whichever instance
// of the service reads it. Send returns the request id that the notice's
// CorrelationID will carry.
func (c *Client) Send(ctx context.Context, topic string, req any, opts ...CallOption) (string, error) {
	return c.send(ctx, topic, KindRequest, c.cfg.noticeTopic, req, opts)
}

func (c *Client) send(ctx context.Context, topic string, kind Kind, replyTo string, req any, opts []CallOption) (string, error) {
	cc, err := newCallConfig(opts)
	if err != nil {
		return "", err
	}
	payload, err := marshalPayload(req)
	if err != nil {
		return "", err
	}
	if c.isClosed() {
		return "", NewError(CodeUnavailable, ErrClosed)
	}
	now := time.Now()
	lc := &lazyCtx{parent: ctx, closing: c.ctx}
	if cc.timeout > 0 {
		lc.deadline = now.Add(cc.timeout)
	}
	defer lc.release()
	id := newIDAt(now)
	msg := c.request(lc, now, topic, id, kind, replyTo, payload, &cc)
	var done func(*Reply, error)
	if o := c.cfg.observer; o != nil {
		msg, done = observeCall(o, ctx, msg)
	}
	if _, err := c.produce(lc, msg, !callerOwned(req), new([1]transport.Message)); err != nil {
		err = c.sendErr(string(kind), topic, err)
		if done != nil {
			done(nil, err)
		}
		return "", err
	}
	if done != nil {
		done(nil, nil)
	}
	return id, nil
}

// ClientStats are counters of a Client's reply reader.
type ClientStats struct {
	// Pending is the number of calls waiting for a reply.
	Pending int
	// Late counts replies that arrived after their call gave up. The
	// client remembers the last 4,096 calls that gave up: a late reply to
	// an older one counts as Foreign.
	Late int64
	// Foreign counts replies on the reply topic for calls this client did
	// not make (other instances sharing the topic), duplicate replies, and
	// late replies it no longer remembers (see Late).
	Foreign int64
	// Resent counts requests sent again by WithResend.
	Resent int64
	// DuplicateNotices counts completion notices dropped by the OnNotice
	// reader because one for the same request was already handled.
	DuplicateNotices int64
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	n := len(c.pending)
	c.mu.Unlock()
	return ClientStats{Pending: n, Late: c.late.Load(), Foreign: c.foreign.Load(), Resent: c.resent.Load(), DuplicateNotices: c.dupNotices.Load()}
}

// Close stops the reply reader and the notice reader, and fails calls still
// waiting with ErrClosed. It does not close the transport. It is idempotent
// and returns once the readers have stopped.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	close(c.done)
	for _, pc := range c.pending {
		if pc.quiet && pc.role != roleHolder {
			c.endQuietLocked(pc, false, callClosed(pc.topic))
		}
	}
	c.mu.Unlock()
	c.cancel()
	var err error
	if c.replies != nil { // nil WithoutReplies
		err = c.replies.Close()
	}
	c.wg.Wait()
	if errors.Is(err, transport.ErrClosed) {
		err = nil
	}
	return err
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// callContext applies the call's timeout, or the client's default when the
// context has no deadline. The context is lazy: the wait below uses a timer
// of its own, and a transport that never waits on it costs no timer.
func (c *Client) callContext(lc *lazyCtx, ctx context.Context, d time.Duration, now time.Time) *lazyCtx {
	lc.reset(ctx, c.ctx)
	if d <= 0 {
		if _, ok := ctx.Deadline(); ok {
			return lc
		}
		d = c.cfg.timeout
	}
	lc.deadline = now.Add(d)
	return lc
}

// request builds a request or notify record; now is the time of the call.
func (c *Client) request(ctx context.Context, now time.Time, topic, id string, kind Kind, replyTo string, payload []byte, cc *callConfig) transport.Message {
	dl, timed := ctx.Deadline()
	timed = timed && kind == KindRequest
	hb := make(headerBuilder, 0, requestHeaders(cc, c.cfg.name, replyTo, timed, c.cfg.observer != nil))
	hb.add(HeaderVersion, ProtocolVersion)
	hb.add(HeaderID, id)
	hb.add(HeaderKind, string(kind))
	hb.add(HeaderMethod, cc.method)
	hb.add(HeaderFrom, c.cfg.name)
	hb.add(HeaderReplyTo, replyTo)
	if timed {
		hb.add(HeaderTimeoutMs, timeoutMsAt(dl, now))
	}
	hb.add(HeaderContentType, contentTypeJSON)
	for _, h := range cc.headers {
		if isRPCHeader(h.k) {
			continue
		}
		hb.add(h.k, h.v)
	}
	return transport.Message{Topic: topic, Key: cc.key, Value: payload, Headers: hb}
}

// requestHeaders is how many headers request writes: the version, id,
// kind and content type, the method, from and reply-to when set, the
// timeout when timed, and the call's own headers (but rpc-* ones) with a
// value. Sized to the header, the array is a size class smaller for most
// calls than one with room for every optional header. With an Observer it
// has room for one more, which CallStarted may add (a trace context)
// without the array being copied.
func requestHeaders(cc *callConfig, from, replyTo string, timed, observed bool) int {
	n := 4
	for _, set := range [...]bool{cc.method != "", from != "", replyTo != "", timed, observed} {
		if set {
			n++
		}
	}
	for _, h := range cc.headers {
		if h.v != "" && !isRPCHeader(h.k) {
			n++
		}
	}
	return n
}

// isRPCHeader says k is in the rpc-* namespace, which a call's own headers
// may not write.
func isRPCHeader(k string) bool { return len(k) >= 4 && k[:4] == "rpc-" }

// timeoutMs is the rpc-timeout-ms value for deadline dl: what is left, at
// least 1.
func timeoutMs(dl time.Time) string { return timeoutMsAt(dl, time.Now()) }

// timeoutMsAt is timeoutMs at now.
func timeoutMsAt(dl, now time.Time) string {
	ms := max(dl.Sub(now).Milliseconds(), 1)
	// Calls with one timeout mostly carry the same value (30000 for the
	// default 30 s, measured from the time the deadline was set): the last
	// one formatted is kept, which saves an allocation per call.
	if last := lastTimeoutMs.Load(); last != nil && last.ms == ms {
		return last.s
	}
	s := strconv.FormatInt(ms, 10)
	lastTimeoutMs.Store(&formattedMs{ms: ms, s: s})
	return s
}

// formattedMs is a number of milliseconds and its decimal form.
type formattedMs struct {
	ms int64
	s  string
}

// lastTimeoutMs is the last value timeoutMs formatted.
var lastTimeoutMs atomic.Pointer[formattedMs]

// setTimeoutHeader rewrites the rpc-timeout-ms header in hs for dl.
func setTimeoutHeader(hs []transport.Header, dl time.Time) {
	for i := range hs {
		if hs[i].Key == HeaderTimeoutMs {
			hs[i].Value = timeoutMs(dl)
		}
	}
}

// lateLogEvery is the least time between two "late reply dropped" lines. A
// peer decides how many late replies arrive, so one line each could flood
// the log; the line says how many were not logged, and ClientStats.Late
// counts them all.
const lateLogEvery = time.Second
