package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

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
	p   producer // t, with its ProduceOwned when it has one
	cfg serverConfig
	log *slog.Logger

	mu        sync.Mutex
	routes    map[string]HandlerFunc // "topic" or "topic/method"
	legacy    map[string]HandlerFunc // "key:topic"
	unhandled func(ctx context.Context, r *Request) error
	topics    map[string]struct{}
	serving   bool
	// dlqChecked holds the served topics whose dead-letter topic was
	// checked (see checkDeadLetterTopics).
	dlqChecked map[string]struct{}

	dedup        *dedupWindow // nil when off; outlives Serve calls
	handled      atomic.Int64
	dupes        atomic.Int64
	deadLettered atomic.Int64
	// run is the Serve call's run while it serves (nil otherwise), for
	// Stats.
	run atomic.Pointer[serveRun]
}

// ServerStats are counters of a Server, over all its Serve calls.
type ServerStats struct {
	// Handled counts records done with (replied, dead-lettered or skipped).
	Handled int64
	// Duplicates counts redelivered requests that the dedup window kept
	// from running again.
	Duplicates int64
	// DeadLettered counts records written to a dead-letter topic (one
	// whose write was refused is not: Serve logs it as lost).
	DeadLettered int64

	// InFlight is how many records the running Serve has taken from the
	// transport and not yet done with (queued for a worker or running);
	// 0 when not serving.
	InFlight int64
	// Uncommitted is how many records the running Serve handled whose
	// offsets are not committed yet: what a crash or a rebalance now
	// would deliver again (the dedup window answers those still in it).
	// It stays up while a record still runs below them (the commit
	// cannot pass it; Serve logs each one that holds others back for a
	// minute); 0 when not serving.
	Uncommitted int64
}

// Stats returns the server's counters. It is safe to call at any time,
// from any goroutine.
func (s *Server) Stats() ServerStats {
	st := ServerStats{Handled: s.handled.Load(), Duplicates: s.dupes.Load(), DeadLettered: s.deadLettered.Load()}
	if r := s.run.Load(); r != nil {
		st.InFlight = max(r.inFlight.Load(), 0)
		st.Uncommitted = max(r.track.pending.Load(), 0)
	}
	return st
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
		t:          t,
		p:          newProducer(t),
		cfg:        cfg,
		log:        cfg.logger.With("rpc.server", cfg.name),
		routes:     make(map[string]HandlerFunc),
		legacy:     make(map[string]HandlerFunc),
		topics:     make(map[string]struct{}),
		dlqChecked: make(map[string]struct{}),
	}
	if cfg.dedupSize > 0 {
		s.dedup = newDedupWindow(cfg.dedupSize, cfg.dedupAge)
	}
	return s, nil
}

// Serve joins the server's consumer group on every routed topic (reading
// from the earliest offset when the group has no committed one) and handles
// requests until ctx is canceled. Then it stops polling, waits for in-flight
// handlers up to the drain timeout (WithDrainTimeout), cancels their
// contexts and waits up to 6 s more (a handler that ignores its context is
// abandoned: its request is redelivered elsewhere), commits what was
// handled, leaves the group and returns nil.
//
// It returns an error at once when there are no routes, the group cannot be
// joined, the dedup topic cannot be replayed or the server is already
// serving (ErrServing), and a non-nil error when the transport fails for
// good (closed or fenced). A ctx canceled while Serve is still starting (replaying the dedup
// topic, joining the group) is a stop like any other: Serve returns nil, as
// nothing was handled and nothing is to commit, so that a process stopped by
// SIGTERM just after it started exits cleanly. Serve may be called again
// after it returned.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return ErrServing
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
			return s.startFailed(ctx, fmt.Errorf("rpc: Serve: %w", err))
		}
		readCtx, stopReading := context.WithCancel(context.Background())
		dr.run(readCtx)
		defer dr.stop()
		defer stopReading()
	}

	track := newTracker()
	instance := s.cfg.instance
	if instance == "" {
		// A fresh id made here, not left to the transport: a transport may
		// fill an empty Instance with a default of its own (upstash.FromEnv
		// takes KAFKA_INSTANCE), which would make two processes that asked
		// for fresh ids twins that fence each other.
		instance = s.cfg.name + "-" + newID()
	}
	cons, err := s.t.Subscribe(ctx, transport.Subscription{
		Group:           s.cfg.group,
		Instance:        instance,
		Topics:          topics,
		Start:           transport.StartEarliest,
		SessionTimeout:  s.cfg.sessionTimeout,
		MaxPollInterval: s.cfg.maxPoll,
		OnRevoked: func(tps []transport.TopicPartition) {
			// Records of these partitions that are queued are not started,
			// and none of their watermarks is committed: the next owner
			// reads them again from the committed offset.
			track.revoke(tps)
		},
	})
	if err != nil {
		return s.startFailed(ctx, fmt.Errorf("rpc: Serve: join group %q: %w", s.cfg.group, err))
	}
	defer s.checkDeadLetterTopics(ctx, topics)()
	return newServeRun(s, cons, track, dr).serve(ctx)
}

// startFailed is Serve's result when starting failed with err: nil when
// ctx was canceled meanwhile (a stop asked for, not a failure), else err.
// A stop's own error (ctx's) is logged at debug level; another one, that
// the stop hides from Serve's caller (a refused join, an unknown dedup
// topic), is logged as a warning.
func (s *Server) startFailed(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		s.log.Debug("rpc: Serve stopped before it started serving", "err", err)
	} else {
		s.log.Warn("rpc: Serve stopped before it started serving; starting had failed", "err", err)
	}
	return nil
}
