package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Server routes requests read from its topics to handlers and sends their
// replies.
//
// Register routes with Handle, HandleFunc, HandleLegacy and HandleUnhandled
// before Serve; registering while serving panics. A route is a topic
// ("reports") or a topic and rpc-method ("reports/monthly"); a request
// with a method that has no route of its own falls back to its topic's route.
//
// Delivery is at-least-once: a request's offset is committed only after its
// handler returned and its reply was produced. Handlers run concurrently (see
// WithConcurrency) and may finish out of order; each partition is committed
// up to its lowest offset still in flight, never past unfinished work.
type Server struct {
	t   transport.Transport
	cfg serverConfig
	log *slog.Logger

	mu        sync.Mutex
	routes    map[string]HandlerFunc // "topic" or "topic/method"
	legacy    map[string]HandlerFunc // "key:topic"
	unhandled func(ctx context.Context, r *Request) error
	topics    map[string]struct{}
	serving   bool

	dedup        *dedupWindow // nil when off; outlives Serve calls
	handled      atomic.Int64
	dupes        atomic.Int64
	deadLettered atomic.Int64
}

// ServerStats are counters of a Server, over all its Serve calls.
type ServerStats struct {
	// Handled counts records done with (replied, dead-lettered or skipped).
	Handled int64
	// Duplicates counts redelivered requests that the dedup window kept
	// from running again.
	Duplicates int64
	// DeadLettered counts records sent to a dead-letter topic.
	DeadLettered int64
}

// Stats returns the server's counters. It is safe to call at any time.
func (s *Server) Stats() ServerStats {
	return ServerStats{Handled: s.handled.Load(), Duplicates: s.dupes.Load(), DeadLettered: s.deadLettered.Load()}
}

// NewServer returns a Server on t. Options are validated here.
func NewServer(t transport.Transport, opts ...ServerOption) (*Server, error) {
	if t == nil {
		return nil, errors.New("rpc: NewServer: nil transport")
	}
	cfg := serverDefaults()
	for _, o := range opts {
		o.applyServer(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		t:      t,
		cfg:    cfg,
		log:    cfg.logger.With("rpc.server", cfg.name),
		routes: make(map[string]HandlerFunc),
		legacy: make(map[string]HandlerFunc),
		topics: make(map[string]struct{}),
	}
	if cfg.dedupSize > 0 {
		s.dedup = newDedupWindow(cfg.dedupSize, cfg.dedupAge)
	}
	return s, nil
}

// Handle registers a typed handler for route ("topic" or "topic/method").
// The request payload is decoded into Req (a payload that does not decode is
// answered with CodeInvalidArgument without calling fn) and the result is
// encoded as JSON. It panics if fn is nil or the route is taken.
func Handle[Req, Resp any](s *Server, route string, fn func(ctx context.Context, req Req) (Resp, error)) {
	if fn == nil {
		panic("rpc: Handle " + route + ": nil handler")
	}
	s.HandleFunc(route, func(ctx context.Context, r *Request) (any, error) {
		var in Req
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		return fn(ctx, in)
	})
}

// HandleFunc registers fn for route ("topic" or "topic/method"). It panics
// if fn is nil, the route is malformed or taken, or the server is serving.
func (s *Server) HandleFunc(route string, fn HandlerFunc) {
	if fn == nil {
		panic("rpc: HandleFunc " + route + ": nil handler")
	}
	topic, method, _ := strings.Cut(route, "/")
	if topic == "" || strings.Contains(method, "/") {
		panic(fmt.Sprintf("rpc: HandleFunc: malformed route %q, want \"topic\" or \"topic/method\"", route))
	}
	s.register(s.routes, route, topic, fn)
}

// HandleLegacy registers fn for records without rpc-* headers whose key is
// key and topic is topic: the seed's match("producer:topic") routing, for
// interop with producers that do not speak the envelope. Such records get no
// reply. It panics as HandleFunc does.
func (s *Server) HandleLegacy(key, topic string, fn HandlerFunc) {
	if fn == nil {
		panic("rpc: HandleLegacy " + key + ":" + topic + ": nil handler")
	}
	if topic == "" {
		panic("rpc: HandleLegacy: empty topic")
	}
	s.register(s.legacy, key+":"+topic, topic, fn)
}

// HandleUnhandled sets the fallback for records no route matches (the seed's
// UnhandledKafkaEvent). A request with a reply-to is still answered with
// CodeUnimplemented after fn returns. Without a fallback such records are
// logged at Warn. It panics if the server is serving.
func (s *Server) HandleUnhandled(fn func(ctx context.Context, r *Request) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		panic("rpc: HandleUnhandled called while serving")
	}
	s.unhandled = fn
}

func (s *Server) register(m map[string]HandlerFunc, key, topic string, fn HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving {
		panic("rpc: route " + key + " registered while serving")
	}
	if _, dup := m[key]; dup {
		panic("rpc: route " + key + " registered twice")
	}
	h := recoverHandler(s.log, fn)
	for i := len(s.cfg.middleware) - 1; i >= 0; i-- {
		h = s.cfg.middleware[i](h)
	}
	if len(s.cfg.middleware) > 0 {
		h = recoverHandler(s.log, h) // a panicking middleware is a bad request too
	}
	m[key] = h
	s.topics[topic] = struct{}{}
}

// Serve joins the server's consumer group on every routed topic (reading
// from the earliest offset when the group has no committed one) and handles
// requests until ctx is canceled. Then it stops polling, waits for in-flight
// handlers up to the drain timeout (WithDrainTimeout), commits what was
// handled, leaves the group and returns nil.
//
// It returns an error at once when there are no routes, the group cannot be
// joined, the dedup topic cannot be replayed (including when ctx ends during
// that replay) or the server is already serving, and a non-nil error when
// the transport fails for good (closed or fenced). Serve may be called again
// after it returned.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("rpc: Serve: already serving")
	}
	if len(s.topics) == 0 {
		s.mu.Unlock()
		return errors.New("rpc: Serve: no routes registered")
	}
	topics := make([]string, 0, len(s.topics))
	for t := range s.topics {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	s.serving = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.serving = false
		s.mu.Unlock()
	}()

	// Replay the dedup topic first, so that requests handled before (by a
	// crashed predecessor, say) are known before any is delivered again.
	var dr *dedupReader
	if s.dedup != nil && s.cfg.dedupTopic != "" {
		var err error
		if dr, err = startDedupReader(ctx, s, s.dedup); err != nil {
			return fmt.Errorf("rpc: Serve: %w", err)
		}
		readCtx, stopReading := context.WithCancel(context.Background())
		dr.run(readCtx)
		defer dr.stop()
		defer stopReading()
	}

	cons, err := s.t.Subscribe(ctx, transport.Subscription{
		Group:          s.cfg.group,
		Instance:       s.cfg.instance,
		Topics:         topics,
		Start:          transport.StartEarliest,
		SessionTimeout: s.cfg.sessionTimeout,
	})
	if err != nil {
		return fmt.Errorf("rpc: Serve: join group %q: %w", s.cfg.group, err)
	}
	run := newServeRun(s, cons)
	return run.serve(ctx)
}

// serveRun is the state of one Serve call.
type serveRun struct {
	s    *Server
	cons transport.Consumer

	dedup      *dedupWindow
	work       []chan transport.Message // one shared, or one per worker with key ordering
	workers    sync.WaitGroup
	handlerCtx context.Context // outlives the Serve ctx by the drain timeout
	hardCancel context.CancelFunc

	stopping atomic.Bool

	track     tracker
	commitSig chan struct{}
	commitWG  sync.WaitGroup
}

func newServeRun(s *Server, cons transport.Consumer) *serveRun {
	hctx, cancel := context.WithCancel(context.Background())
	var work []chan transport.Message
	if s.cfg.keyOrdering {
		for range s.cfg.concurrency {
			work = append(work, make(chan transport.Message, 64))
		}
	} else {
		work = []chan transport.Message{make(chan transport.Message, s.cfg.concurrency)}
	}
	return &serveRun{
		work:       work,
		s:          s,
		cons:       cons,
		dedup:      s.dedup,
		handlerCtx: hctx,
		hardCancel: cancel,
		track:      tracker{parts: make(map[topicPartition]*partState)},
		commitSig:  make(chan struct{}, 1),
	}
}

func (r *serveRun) serve(ctx context.Context) error {
	for i := range r.s.cfg.concurrency {
		r.workers.Add(1)
		go r.worker(r.work[i%len(r.work)])
	}
	stopCommitter := make(chan struct{})
	r.commitWG.Add(1)
	go r.committer(stopCommitter)

	pollErr := r.pollLoop(ctx)
	r.stopping.Store(true) // in-flight handlers finish; queued records wait for the next owner

	// Drain: no more work; let in-flight handlers finish within the drain
	// timeout, then cancel their contexts and wait for them to return.
	for _, w := range r.work {
		close(w)
	}
	drained := make(chan struct{})
	go func() { r.workers.Wait(); close(drained) }()
	timer := time.NewTimer(r.s.cfg.drain)
	select {
	case <-drained:
	case <-timer.C:
		r.s.log.Warn("rpc: drain timeout reached; canceling in-flight handlers", "timeout", r.s.cfg.drain)
		r.hardCancel()
		<-drained
	}
	timer.Stop()
	r.hardCancel()

	close(stopCommitter)
	r.commitWG.Wait()
	r.commit() // the final watermark
	if err := r.cons.Close(); err != nil && !errors.Is(err, transport.ErrClosed) {
		r.s.log.Warn("rpc: leaving group failed", "err", err)
	}
	return pollErr
}

func (r *serveRun) pollLoop(ctx context.Context) error {
	err := pollRetrying(ctx, r.cons, r.s.log, "request", func(msgs []transport.Message) bool {
		for _, m := range msgs {
			if !r.track.add(&m) {
				continue // its first delivery is still being handled
			}
			work := r.work[0]
			if len(r.work) > 1 {
				work = r.work[keyHash(m.Key)%uint32(len(r.work))]
			}
			select {
			case work <- m:
			case <-ctx.Done():
				return false // the rest stay uncommitted: redelivered later
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("rpc: Serve: %w", err)
	}
	return nil
}

func (r *serveRun) worker(work <-chan transport.Message) {
	defer r.workers.Done()
	for m := range work {
		if r.stopping.Load() {
			continue // not started before the stop: left uncommitted, redelivered later
		}
		if !r.handle(&m) {
			continue // stays in flight: not committed, redelivered later
		}
		r.s.handled.Add(1)
		if r.track.complete(&m) {
			select {
			case r.commitSig <- struct{}{}:
			default:
			}
		}
	}
}

func (r *serveRun) committer(stop <-chan struct{}) {
	defer r.commitWG.Done()
	for {
		select {
		case <-r.commitSig:
			r.commit()
		case <-stop:
			return
		}
	}
}

func (r *serveRun) commit() {
	marks := r.track.takeDirty()
	if len(marks) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.cons.Commit(ctx, marks...)
	if err == nil {
		return
	}
	if len(marks) > 1 {
		// One partition rebalanced away fails the whole commit: commit the
		// others one by one, so their progress is kept.
		var errs []error
		for _, m := range marks {
			if err := r.cons.Commit(ctx, m); err != nil {
				errs = append(errs, err)
			}
		}
		err = errors.Join(errs...)
		if err == nil {
			return
		}
	}
	level := slog.LevelWarn
	if errors.Is(err, transport.ErrNotAssigned) {
		level = slog.LevelDebug // rebalanced away: the new owner redelivers
	}
	r.s.log.Log(ctx, level, "rpc: commit failed; records after the last commit may be redelivered", "err", err)
}

// handle runs one record to completion: checks, dedup, route, handler with
// retries, reply. It reports whether the record is done with, so that its
// offset may be committed: false only when the handler was cut short by a
// hard stop or its reply could not be produced, and the record must be
// delivered again.
func (r *serveRun) handle(m *transport.Message) bool {
	s := r.s
	if s.cfg.maxPayload > 0 && len(m.Value) > s.cfg.maxPayload {
		env, _ := decodeEnvelope(m) // best effort, for the error reply
		done, _ := r.poison(m, &env, reasonOversize, Errorf(CodeResourceExhausted,
			"payload of %d bytes is over the server's limit of %d", len(m.Value), s.cfg.maxPayload), "")
		return done
	}
	env, err := decodeEnvelope(m)
	if err != nil {
		done, _ := r.poison(m, &env, reasonBadEnvelope, NewError(CodeInvalidArgument, err), "")
		return done
	}
	if env.kind == KindReply || env.kind == KindProgress {
		done, _ := r.poison(m, &env, reasonNotARequest, Errorf(CodeInvalidArgument, "%s record on request topic %s", env.kind, m.Topic), "")
		return done
	}
	// A payload that is not JSON is caught where it is decoded (Handle,
	// Request.Decode), which dead-letters it as undecodable: no second scan
	// of every payload here.
	req := &Request{
		Topic:   m.Topic,
		Method:  env.method,
		From:    env.from,
		ID:      env.id,
		Kind:    env.kind,
		Key:     m.Key,
		Payload: m.Value,
		Headers: m.Headers,
		Legacy:  env.legacy,
		Message: *m,
	}
	replyTo := ""
	if env.kind == KindRequest {
		replyTo = env.replyTo
	}
	var h HandlerFunc
	if env.legacy {
		req.From = m.Key
		h = s.legacy[m.Key+":"+m.Topic]
	} else {
		now := time.Now()
		req.Deadline = env.deadlineFor(m, now)
		if !req.Deadline.IsZero() && !now.Before(req.Deadline) {
			s.log.Info("rpc: expired request not run", "topic", m.Topic, "id", env.id, "from", env.from, "deadline", req.Deadline)
			return true
		}
		if env.method != "" {
			h = s.routes[m.Topic+"/"+env.method]
		}
		if h == nil {
			h = s.routes[m.Topic]
		}
	}

	// Dedup: a request handled within the window is not run again; its
	// stored reply is sent again instead.
	dedupID := ""
	if r.dedup != nil && !env.legacy {
		switch state, e := r.dedup.begin(env.id, time.Now()); state {
		case dedupDone:
			r.s.dupes.Add(1)
			s.log.Debug("rpc: duplicate request not run again", "topic", m.Topic, "id", env.id)
			if e.reply != nil {
				ok, _ := r.produce("reply (again)", env.id, *e.reply)
				return ok
			}
			return true
		case dedupInFlight:
			r.s.dupes.Add(1)
			s.log.Debug("rpc: copy of a request still running dropped", "topic", m.Topic, "id", env.id)
			return true // the first delivery replies
		}
		dedupID = env.id
	}
	// complete and poison record the request as handled in the window
	// before they produce its reply, so that a copy arriving meanwhile is
	// answered with the stored reply rather than dropped as in flight.
	// Only a request cut short leaves the window without an entry.
	recorded := false
	if dedupID != "" {
		defer func() {
			if !recorded {
				r.dedup.finish(dedupID, nil)
			}
		}()
	}

	hc := &handlerCtx{
		lazyCtx: lazyCtx{parent: r.handlerCtx, deadline: req.Deadline},
		resp:    responder{run: r, env: &env, req: req, canReply: replyTo != ""},
	}
	hc.lazyCtx.resp = &hc.resp
	defer hc.release()
	var ctx context.Context = hc

	if h == nil {
		if !r.unhandled(ctx, req) {
			recorded = true
			done, _ := r.poison(m, &env, reasonUnknownRoute, Errorf(CodeUnimplemented, "no handler for %s", routeName(m.Topic, env.method)), dedupID)
			return done
		}
		var reply *transport.Message
		if replyTo != "" {
			rm := s.replyMessage(&env, KindReply, nil, Errorf(CodeUnimplemented, "no handler for %s", routeName(m.Topic, env.method)))
			reply = &rm
		}
		recorded = true
		return r.complete(&env, dedupID, &handledEntry{id: env.id, at: time.Now(), reply: reply})
	}

	res, herr := r.run(ctx, h, req)
	if herr != nil && r.handlerCtx.Err() != nil && errors.Is(herr, context.Canceled) {
		// Cut short by a hard stop: not done, delivered again later.
		s.log.Warn("rpc: handler canceled by shutdown; the request will be redelivered", "request", req.String())
		return false
	}
	if herr != nil && errors.Is(herr, errUndecodable) {
		recorded = true
		done, _ := r.poison(m, &env, reasonUndecodable, handlerErr(herr), dedupID)
		return done
	}
	if herr != nil && isRetryable(herr) {
		recorded = true
		done, _ := r.poison(m, &env, reasonRetriesExhausted, handlerErr(herr), dedupID)
		return done
	}
	if replyTo == "" {
		if herr != nil {
			s.log.Warn("rpc: handler failed", "request", req.String(), "err", herr)
		}
		recorded = true
		return r.complete(&env, dedupID, &handledEntry{id: env.id, at: time.Now()})
	}
	var reply transport.Message
	if herr != nil {
		reply = s.replyMessage(&env, KindReply, nil, handlerErr(herr))
	} else if payload, err := marshalPayload(res); err != nil {
		reply = s.replyMessage(&env, KindReply, nil, Errorf(CodeInternal, "encode reply: %v", err))
	} else {
		reply = s.replyMessage(&env, KindReply, payload, nil)
	}
	recorded = true
	return r.complete(&env, dedupID, &handledEntry{id: env.id, at: time.Now(), reply: &reply})
}

// run calls h, retrying errors marked Retryable with backoff, up to the
// configured attempts and within the request's deadline.
func (r *serveRun) run(ctx context.Context, h HandlerFunc, req *Request) (any, error) {
	delay := r.s.cfg.retryDelay
	for attempt := 1; ; attempt++ {
		res, err := h(ctx, req)
		if e, ok := err.(*Error); ok && e == nil {
			err = nil // the classic typed nil: a nil *Error is no error
		}
		if err == nil || !isRetryable(err) || attempt >= r.s.cfg.retries {
			return res, err
		}
		r.s.log.Debug("rpc: retryable handler error; retrying", "request", req.String(), "attempt", attempt, "err", err)
		if !sleepCtx(ctx, delay) {
			return res, err
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// complete produces the reply of a handled request (if any) together with
// its dedup marker, in one produce so that both or neither are written. A
// reply too large for the transport is replaced by an error reply
// (CodeResourceExhausted), so the caller learns what happened.
func (r *serveRun) complete(env *envelope, dedupID string, e *handledEntry) bool {
	if dedupID != "" {
		r.dedup.finish(dedupID, e)
	}
	ok, err := r.produce("reply", env.id, r.replyBatch(env, e)...)
	if errors.Is(err, transport.ErrMessageTooLarge) && e.reply != nil {
		big := len(e.reply.Value)
		small := r.s.replyMessage(env, KindReply, nil, Errorf(CodeResourceExhausted, "reply of %d bytes is over the transport's limit", big))
		e.reply = &small // what a copy of the request will be answered with
		ok, _ = r.produce("error reply", env.id, r.replyBatch(env, e)...)
	}
	return ok
}

// replyBatch is the reply of e (if any) and its dedup marker (if the
// window is persisted).
func (r *serveRun) replyBatch(env *envelope, e *handledEntry) []transport.Message {
	msgs := make([]transport.Message, 0, 2)
	if e.reply != nil {
		msgs = append(msgs, *e.reply)
	}
	if r.dedup != nil && r.s.cfg.dedupTopic != "" && !env.legacy {
		msgs = append(msgs, markerFor(r.s.cfg.dedupTopic, r.dedup.self, env.id, e.reply))
	}
	return msgs
}

// produce writes msgs, retrying transient transport errors with capped
// backoff until they are written, fail for good, or a hard stop (the drain
// timeout) ends the handlers' context: the handler's work is done, so its
// reply is worth the wait, and giving up would hold back the partition's
// commits for the rest of the run. The first attempt does not use the
// handlers' context, so a reply whose handler finished is sent even during a
// hard stop. Permanent errors (unknown topic, too large, invalid) are logged
// and the record counts as done, so that one bad reply-to cannot stall a
// partition; err is the permanent error, for callers that can do better.
func (r *serveRun) produce(what, id string, msgs ...transport.Message) (ok bool, err error) {
	if len(msgs) == 0 {
		return true, nil
	}
	_, err = r.s.t.Produce(context.Background(), msgs...)
	for attempt := 1; err != nil; attempt++ {
		if permanentProduceErr(err) {
			r.s.log.Error("rpc: "+what+" lost: the transport refused it", "topic", msgs[0].Topic, "id", id, "err", err)
			return true, err
		}
		if attempt == 5 {
			r.s.log.Warn("rpc: "+what+" not produced yet; retrying", "topic", msgs[0].Topic, "id", id, "err", err)
		}
		if !sleepCtx(r.handlerCtx, min(retryDelay(attempt), maxProduceBackoff)) {
			r.s.log.Error("rpc: "+what+" not produced before the stop; the request stays uncommitted and will be redelivered", "topic", msgs[0].Topic, "id", id, "err", err, "attempts", attempt)
			return false, nil
		}
		_, err = r.s.t.Produce(r.handlerCtx, msgs...)
	}
	return true, nil
}

// maxProduceBackoff caps the wait between a reply's produce attempts.
const maxProduceBackoff = time.Second

func permanentProduceErr(err error) bool {
	return errors.Is(err, transport.ErrClosed) || errors.Is(err, transport.ErrInvalid) ||
		errors.Is(err, transport.ErrMessageTooLarge) || errors.Is(err, transport.ErrUnknownTopic)
}

// unhandled runs the fallback for a record no route matches, reporting
// whether there was one.
func (r *serveRun) unhandled(ctx context.Context, req *Request) bool {
	r.s.mu.Lock()
	fn := r.s.unhandled
	r.s.mu.Unlock()
	if fn == nil {
		return false
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.s.log.Error("rpc: unhandled-record handler panicked", "panic", fmt.Sprint(p))
			}
		}()
		if err := fn(ctx, req); err != nil {
			r.s.log.Warn("rpc: unhandled-record handler failed", "topic", req.Topic, "err", err)
		}
	}()
	return true
}

func (s *Server) replyMessage(env *envelope, kind Kind, payload []byte, herr *Error) transport.Message {
	hb := make(headerBuilder, 0, 9)
	hb.add(HeaderVersion, ProtocolVersion)
	hb.add(HeaderID, newID())
	hb.add(HeaderKind, string(kind))
	hb.add(HeaderFrom, s.cfg.name)
	hb.add(HeaderCorrelationID, env.id)
	hb.add(HeaderContentType, contentTypeJSON)
	hb.add(HeaderTraceparent, env.traceparent)
	if herr != nil {
		hb.add(HeaderErrorCode, herr.Code.String())
		hb = append(hb, transport.Header{Key: HeaderError, Value: herr.Message})
		payload = herr.Details
	}
	// Keyed by the request id: a request's progress notices and reply share
	// a partition, so they arrive in the order they were sent.
	m := transport.Message{Topic: env.replyTo, Key: env.id, Value: payload, Headers: hb}
	if env.replyPartition >= 0 {
		m.Partition, m.ManualPartition = env.replyPartition, true
	}
	return m
}

func routeName(topic, method string) string {
	if method == "" {
		return topic
	}
	return topic + "/" + method
}

type responderKey struct{}

// handlerCtx is a handler's context and its request info in one
// allocation.
type handlerCtx struct {
	lazyCtx
	resp responder
}

type responder struct {
	run      *serveRun
	env      *envelope
	req      *Request
	canReply bool
}

// RequestFrom returns the request being handled in ctx, for handlers
// registered with Handle, which get only the decoded payload.
func RequestFrom(ctx context.Context) (*Request, bool) {
	rs, ok := ctx.Value(responderKey{}).(*responder)
	if !ok {
		return nil, false
	}
	return rs.req, true
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
// its caller: a Call's WithProgress callback, or the OnReply handler of a
// Send. It does nothing (and returns nil) when the request has no reply-to,
// as for notifications and legacy records.
func Progress(ctx context.Context, v any) error {
	rs, ok := ctx.Value(responderKey{}).(*responder)
	if !ok || !rs.canReply {
		return nil
	}
	payload, err := marshalPayload(v)
	if err != nil {
		return err
	}
	msg := rs.run.s.replyMessage(rs.env, KindProgress, payload, nil)
	if _, err := rs.run.s.t.Produce(ctx, msg); err != nil {
		return wrapCallErr(fmt.Errorf("rpc: progress for %s: %w", rs.env.id, err))
	}
	return nil
}

// tracker keeps, per partition, the offsets handed to workers and the
// watermark: the highest offset below which everything is done.
type tracker struct {
	mu    sync.Mutex
	parts map[topicPartition]*partState
	dirty []topicPartition
}

type topicPartition struct {
	topic     string
	partition int32
}

type partState struct {
	offs  []int64
	done  []bool
	head  int
	mark  int64 // last offset of the done prefix
	dirty bool
}

// add tracks m as in flight. It reports false when m's offset is in flight
// already (delivered again while its first delivery is being handled): that
// copy must not be dispatched, or its completion would mark the shared slot
// done and let the watermark pass work still running.
func (t *tracker) add(m *transport.Message) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := topicPartition{m.Topic, m.Partition}
	ps := t.parts[k]
	if ps == nil {
		ps = &partState{mark: -1}
		t.parts[k] = ps
	}
	if m.Offset <= ps.mark {
		// Delivered again after it was handled (the partition came back
		// after a rebalance): dedup answers it, and the watermark stays.
		return true
	}
	n := len(ps.offs)
	if n == ps.head || m.Offset > ps.offs[n-1] {
		ps.offs = append(ps.offs, m.Offset)
		ps.done = append(ps.done, false)
		return true
	}
	// Out of order (a redelivery from an earlier offset, or a transport
	// that reorders): insert in place, once.
	live := ps.offs[ps.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i] >= m.Offset })
	if live[i] == m.Offset {
		return ps.done[ps.head+i] // a live copy is not dispatched twice
	}
	i += ps.head
	ps.offs = slices.Insert(ps.offs, i, m.Offset)
	ps.done = slices.Insert(ps.done, i, false)
	return true
}

// complete marks m done and reports whether a watermark moved.
func (t *tracker) complete(m *transport.Message) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := topicPartition{m.Topic, m.Partition}
	ps := t.parts[k]
	if ps == nil {
		return false
	}
	live := ps.offs[ps.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i] >= m.Offset })
	if i == len(live) || live[i] != m.Offset {
		return false // bookkeeping was reset since
	}
	ps.done[ps.head+i] = true
	moved := false
	for ps.head < len(ps.offs) && ps.done[ps.head] {
		ps.mark = ps.offs[ps.head]
		ps.head++
		moved = true
	}
	if ps.head == len(ps.offs) {
		ps.offs, ps.done, ps.head = ps.offs[:0], ps.done[:0], 0
	} else if ps.head > 1024 && ps.head > len(ps.offs)/2 {
		n := copy(ps.offs, ps.offs[ps.head:])
		copy(ps.done, ps.done[ps.head:])
		ps.offs, ps.done, ps.head = ps.offs[:n], ps.done[:n], 0
	}
	if moved && !ps.dirty {
		ps.dirty = true
		t.dirty = append(t.dirty, k)
	}
	return moved
}

// takeDirty returns one record per partition whose watermark moved since
// the last call; committing them commits each watermark.
func (t *tracker) takeDirty() []transport.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.dirty) == 0 {
		return nil
	}
	out := make([]transport.Message, 0, len(t.dirty))
	for _, k := range t.dirty {
		ps := t.parts[k]
		ps.dirty = false
		out = append(out, transport.Message{Topic: k.topic, Partition: k.partition, Offset: ps.mark})
	}
	t.dirty = t.dirty[:0]
	return out
}

// keyHash is FNV-1a, to spread keys over workers with key ordering.
func keyHash(k string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		h ^= uint32(k[i])
		h *= 16777619
	}
	return h
}
