package restserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Consumer instances (§4).
//
// An instance is keyed by (group, instance) and made by the first consume
// that names it; its configuration headers (§4.2) are read only then (the
// millisecond ones must be whole numbers up to 2147483647, Kafka's int
// range, else 400). It
// owns one backend Member, joined with Instance = the instance name (static
// membership). Consumes of one instance are served one at a time; commits
// and reads run alongside.
//
// If a consume names a different set of topics than the instance reads, the
// instance re-subscribes, as KafkaConsumer.subscribe() replaces a
// subscription: it commits its positions (when auto-commit is on), leaves the
// group and rejoins with the new topics, keeping its configuration; when
// that join is refused or fails, it rejoins with its old topics (see
// ensureMember).
//
// Auto-commit (on by default) works as in a Kafka consumer: at the start of
// a consume, if Kafka-Auto-Commit-Interval ms have passed since the last
// auto-commit, the positions reached by the earlier consumes are committed;
// they are committed too when the instance is deleted, expires or the server
// closes.
//
// Liveness, in three layers, as in Upstash where each instance is a Kafka
// client inside the REST server:
//   - The instance's group member heartbeats by itself while the instance
//     exists, with Kafka-Session-Timeout-Ms as its session timeout: a REST
//     client that consumes every 400 ms with a 300 ms session keeps its
//     partitions and its commits count. (The REST client cannot heartbeat
//     for the member, nor would it need to.)
//   - The member is dropped as stuck when the instance does not consume for
//     its max poll interval (Kafka-Max-Poll-Interval-Ms, an extension of
//     this server; default the backend's, 5 minutes as in Kafka). Its
//     partitions go to the other members; a commit then fails with 400
//     naming the cause, and the next consume rejoins and reads again from
//     the committed offsets.
//   - An instance with no request at all (consume, commit, committed) for
//     the instance expiry (WithInstanceExpiry, default 5 minutes) is closed:
//     any request is a heartbeat of the REST client.

const (
	defaultConsumeTimeout   = 1000 * time.Millisecond
	defaultMetadataTimeout  = 10000 * time.Millisecond
	defaultAutoCommitPeriod = 5000 * time.Millisecond
	// defaultSessionTimeout is Kafka's session.timeout.ms default since
	// 3.0 (KIP-735), not the 120 s Upstash documented: see doc.go.
	defaultSessionTimeout = 45000 * time.Millisecond
	closeCommitTimeout    = 5 * time.Second
)

// instanceKey names a consumer instance: each user without the admin right
// has its own namespace of instance names, so that one user cannot take
// another's instance name (see [WithUsers]); admins, and everyone when
// authentication is off, share one (owner "").
type instanceKey struct{ owner, group, name string }

// keyFor is the key of instance name of group for r's user.
func keyFor(r *http.Request, group, name string) instanceKey {
	if isAdmin(r) {
		return instanceKey{"", group, name}
	}
	return instanceKey{owner(r), group, name}
}

// memberInstance is the backend member id of the instance: its name,
// prefixed by its owner's when there is one, so that two users' instances
// of the same name in one group do not replace (fence) each other.
func (k instanceKey) memberInstance() string {
	if k.owner == "" {
		return k.name
	}
	return k.owner + "/" + k.name
}

// consumerConfig holds the §4.2 headers.
type consumerConfig struct {
	autoCommit         bool
	autoCommitInterval time.Duration
	reset              string // earliest, latest or none
	sessionTimeout     time.Duration
	maxPollInterval    time.Duration // 0: the backend's default
}

func parseConsumerConfig(h http.Header) (consumerConfig, error) {
	c := consumerConfig{
		autoCommit:         true,
		autoCommitInterval: defaultAutoCommitPeriod,
		reset:              "latest",
		sessionTimeout:     defaultSessionTimeout,
	}
	if v := strings.TrimSpace(h.Get("Kafka-Enable-Auto-Commit")); v != "" {
		switch strings.ToLower(v) {
		case "true":
			c.autoCommit = true
		case "false":
			c.autoCommit = false
		default:
			return c, badRequest(fmt.Sprintf("Kafka-Enable-Auto-Commit must be true or false, got %q", v))
		}
	}
	if d, ok, err := headerMillis(h, "Kafka-Auto-Commit-Interval", 0); err != nil {
		return c, err
	} else if ok {
		c.autoCommitInterval = d
	}
	if v := strings.TrimSpace(h.Get("Kafka-Auto-Offset-Reset")); v != "" {
		switch lv := strings.ToLower(v); lv {
		case "earliest", "latest", "none":
			c.reset = lv
		default:
			return c, badRequest(fmt.Sprintf("Kafka-Auto-Offset-Reset must be earliest, latest or none, got %q", v))
		}
	}
	if d, ok, err := headerMillis(h, "Kafka-Session-Timeout-Ms", 1); err != nil {
		return c, err
	} else if ok {
		c.sessionTimeout = d
	}
	if d, ok, err := headerMillis(h, "Kafka-Max-Poll-Interval-Ms", 1); err != nil {
		return c, err
	} else if ok {
		c.maxPollInterval = d
	}
	return c, nil
}

// maxHeaderMillis is the largest millisecond value a configuration header
// may carry: Kafka's configs of this kind are Java ints.
const maxHeaderMillis = math.MaxInt32

// headerMillis reads header name as a whole number of milliseconds from
// least to maxHeaderMillis; ok is false when the header is absent.
func headerMillis(h http.Header, name string, least int64) (d time.Duration, ok bool, err error) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return 0, false, nil
	}
	ms, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || ms < least || ms > maxHeaderMillis {
		return 0, false, badRequest(fmt.Sprintf("%s must be a whole number of milliseconds from %d to %d, got %q",
			name, least, maxHeaderMillis, v))
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}

type instance struct {
	key   instanceKey
	cfg   consumerConfig
	owner string // name of the user whose consume made it ("" without auth)

	pollSem chan struct{} // holds one token while a consume runs
	// gone is canceled by closeInstance: it ends a join in progress.
	gone       context.Context
	cancelGone context.CancelFunc

	busy     atomic.Int32 // requests using the instance; >0 stops expiry
	replaced atomic.Bool  // by a new incarnation: closed without a commit
	lastUsed atomic.Int64 // unix nanoseconds of the last request's end

	mu             sync.Mutex
	member         Member   // nil until the first join succeeds
	topics         []string // sorted, what member reads
	lastAutoCommit time.Time
	closed         bool

	unacked unacked // the last answer, while its client has not acknowledged it (ack.go)
}

// acquireInstance returns the instance for key, creating it (without
// joining yet) from r's headers if there is none, and marks it busy. Call
// release when done. created tells whether this call made it. Another
// user's instance is a 403.
func (s *Server) acquireInstance(key instanceKey, r *http.Request, create bool) (in *instance, created bool, err error) {
	var cfg consumerConfig
	var cfgErr error
	if create {
		cfg, cfgErr = parseConsumerConfig(r.Header)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false, &httpError{status: http.StatusServiceUnavailable, msg: "server is shutting down"}
	}
	if err := s.staleIncarnationLocked(key, r); err != nil {
		return nil, false, err
	}
	in = s.instances[key]
	if in == nil {
		if !create {
			return nil, false, errorf(http.StatusNotFound, "consumer instance %q of group %q does not exist: a consume creates it", key.name, key.group)
		}
		if cfgErr != nil {
			return nil, false, cfgErr
		}
		if len(s.instances) >= s.cfg.maxInstances {
			return nil, false, &httpError{status: http.StatusServiceUnavailable, retryAfter: "5",
				msg: fmt.Sprintf("too many consumer instances: the server's limit of %d is reached; delete unused instances (/delete-consumer) or retry later", s.cfg.maxInstances)}
		}
		in = &instance{key: key, cfg: cfg, owner: owner(r), pollSem: make(chan struct{}, 1)}
		in.gone, in.cancelGone = context.WithCancel(context.Background())
		s.instances[key] = in
		created = true
	} else if err := checkOwner(r, in); err != nil {
		return nil, false, err
	}
	in.busy.Add(1)
	return in, created, nil
}

func (s *Server) releaseInstance(in *instance) {
	in.lastUsed.Store(time.Now().UnixNano())
	in.busy.Add(-1)
}

// forgetInstance removes in from the registry if it is still there.
func (s *Server) forgetInstance(in *instance) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instances[in.key] == in {
		delete(s.instances, in.key)
		return true
	}
	return false
}

// closeInstance commits (if auto-commit) and closes in's member. The caller
// has removed in from the registry.
func (s *Server) closeInstance(in *instance, why string) {
	m := in.detach()
	if m == nil {
		return
	}
	s.commitOnClose(in, m)
	s.leave(in, m, why)
}

// detach marks in closed and returns its member, nil if it had none or was
// already closed.
func (in *instance) detach() Member {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	in.closed = true
	in.cancelGone()
	m := in.member
	in.member = nil
	return m
}

// commitOnClose commits m's positions if in auto-commits and was not
// replaced by a new incarnation.
func (s *Server) commitOnClose(in *instance, m Member) {
	if !in.cfg.autoCommit || in.replaced.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeCommitTimeout)
	defer cancel()
	if err := m.CommitPositions(ctx); err != nil && !errors.Is(err, transport.ErrClosed) {
		s.log.Warn("kafka-rest: commit on close failed", "group", in.key.group, "instance", in.key.name, "err", err)
	}
}

// leave closes m, in's member: it leaves its group.
func (s *Server) leave(in *instance, m Member, why string) {
	if err := m.Close(); err != nil {
		s.log.Warn("kafka-rest: closing consumer failed", "group", in.key.group, "instance", in.key.name, "err", err)
	}
	s.log.Debug("kafka-rest: consumer instance closed", "group", in.key.group, "instance", in.key.name, "why", why)
}

// currentMember returns in's member, nil if it has not joined yet.
func (in *instance) currentMember() (Member, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, errInstanceGone
	}
	return in.member, nil
}

// joinedMember returns in's member if it has joined and reads exactly
// topics, nil if not (ensureMember then joins).
func (in *instance) joinedMember(topics []string) (Member, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, errInstanceGone
	}
	if in.member != nil && slices.Equal(in.topics, topics) {
		return in.member, nil
	}
	return nil, nil
}

// ensureMember returns a member reading exactly topics, joining or
// re-subscribing as needed. The caller holds the poll token.
//
// A re-subscribe the backend refuses (a 4xx: Kafka-Auto-Offset-Reset none
// and a partition of the new set without a committed offset, a topic that
// does not exist), or whose join fails otherwise (a 5xx the client is to
// retry, the client gone during the join; not the instance's own end nor
// the server's), leaves the instance as it was: its member rejoins with
// the topics it read, from the positions committed before it left (with
// auto-commit; without it, from the group's committed offsets, as after a
// rebalance), keeping its configuration; under Kafka-Auto-Offset-Reset
// none too, a partition without a committed offset starting at the latest
// offset as one handed over by a rebalance (see rejoin). Only when that
// rejoin fails too is the instance gone, as one whose first join failed.
func (s *Server) ensureMember(ctx context.Context, in *instance, topics []string) (Member, error) {
	if in.cfg.reset == "none" {
		// Refuse before anything is joined or left when the group has no
		// committed offset on the topics at all: joining would fix the
		// group's start positions.
		if err := s.requireSomeCommitted(ctx, in.key.group, topics); err != nil {
			return nil, err
		}
	}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil, errInstanceGone
	}
	old, oldTopics := in.member, in.topics
	if old != nil && slices.Equal(in.topics, topics) {
		in.mu.Unlock()
		return old, nil
	}
	in.member = nil
	in.mu.Unlock()
	if old != nil {
		// Re-subscribe: leave with the old topics first, so the new member
		// is not fenced by (and does not fence) the old one.
		if in.cfg.autoCommit {
			if err := old.CommitPositions(ctx); err != nil {
				s.log.Warn("kafka-rest: commit before re-subscribe failed", "group", in.key.group, "instance", in.key.name, "err", err)
			}
		}
		_ = old.Close()
		s.log.Debug("kafka-rest: consumer instance re-subscribes", "group", in.key.group, "instance", in.key.name, "topics", topics)
	}
	m, err := s.join(ctx, in, topics, in.cfg.reset == "none")
	if err != nil {
		if old != nil && s.rejoinAfter(err) && in.gone.Err() == nil {
			s.rejoin(ctx, in, oldTopics, err)
		}
		return nil, err
	}
	if err := in.install(m, topics); err != nil {
		return nil, err
	}
	return m, nil
}

// rejoinAfter says the instance whose re-subscribe's join failed with err
// rejoins its old topics: when the backend refused the subscription (a
// 4xx) or could not serve it now (a 5xx, as the 503 of an end offset that
// could not be listed, whose retry must find the same instance; a client
// that left during the join), rather than when the instance itself was
// replaced by a new incarnation or deleted, or the server is closing, or
// the join took all its time (a rejoin would most likely too, and the
// client would wait for it as long again).
func (s *Server) rejoinAfter(err error) bool {
	return !errors.Is(err, transport.ErrFenced) && !errors.Is(err, errInstanceGone) && !s.closing() &&
		!errors.Is(err, context.DeadlineExceeded)
}

// rejoin joins in's group again with topics, those its member read before
// a re-subscribe the backend refused (why), and makes that in's member.
//
// The rejoin is not strict even with Kafka-Auto-Offset-Reset none: it
// takes up what the old member read, as after a rebalance, where that
// member had partitions handed over without a committed offset (starting
// at the latest offset): a strict join refused them, and the instance
// was deleted by a refusal that named only the new set's fault.
//
// It runs whether or not the consume's client still waits (a refused join
// on Kafka can outlast a client's timeout): under ctx's values, the
// server's maximum timeout, and until in is closed or the server closes.
func (s *Server) rejoin(ctx context.Context, in *instance, topics []string, why error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.maxTimeout)
	defer cancel()
	defer context.AfterFunc(in.gone, cancel)()
	defer context.AfterFunc(s.closeCtx, cancel)()
	m, err := s.join(ctx, in, topics, false)
	if err == nil {
		err = in.install(m, topics)
	}
	if err != nil {
		s.log.Warn("kafka-rest: consumer instance could not rejoin with its topics after a refused re-subscribe; it is closed",
			"group", in.key.group, "instance", in.key.name, "topics", topics, "refused", why, "err", err)
		return
	}
	s.log.Debug("kafka-rest: consumer instance rejoined with its topics after a refused re-subscribe",
		"group", in.key.group, "instance", in.key.name, "topics", topics, "refused", why)
}

// install makes m, joined with topics, in's member; m is closed if in was
// closed meanwhile.
func (in *instance) install(m Member, topics []string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		_ = m.Close()
		return errInstanceGone
	}
	in.member = m
	in.topics = topics
	in.lastAutoCommit = time.Now()
	return nil
}

// join joins in's group with topics. strict (Kafka-Auto-Offset-Reset none)
// refuses a first assignment with a partition without a committed offset,
// or with one out of its range.
func (s *Server) join(ctx context.Context, in *instance, topics []string, strict bool) (Member, error) {
	sub := transport.Subscription{
		Group:           in.key.group,
		Instance:        in.key.memberInstance(),
		Topics:          topics,
		Start:           transport.StartLatest,
		SessionTimeout:  in.cfg.sessionTimeout,
		MaxPollInterval: in.cfg.maxPollInterval,
	}
	if in.cfg.reset == "earliest" {
		sub.Start = transport.StartEarliest
	}
	if cs, ok := s.backend.(CommittedSubscriber); ok && strict {
		// Kafka's auto.offset.reset=none: fail when a partition the member
		// starts with has no committed offset, with no start fixed for it.
		// (Partitions handed over later by a rebalance start at the latest
		// offset.)
		c, missing, err := cs.SubscribeCommitted(ctx, sub)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			if c != nil {
				_ = c.Close()
			}
			return nil, s.refusedStart(ctx, in.key.group, missing[0])
		}
		m, err := asMember(c)
		if err != nil {
			return nil, err
		}
		s.log.Debug("kafka-rest: consumer instance joined", "group", in.key.group, "instance", in.key.name, "topics", topics)
		return m, nil
	}
	m, err := s.subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	if strict {
		// As above, for a backend that cannot join that way: right when
		// its Subscribe fixes no start by a commit.
		var tps []transport.TopicPartition
		for topic, parts := range m.Assignment() {
			for _, p := range parts {
				tps = append(tps, transport.TopicPartition{Topic: topic, Partition: p})
			}
		}
		offs, err := s.committedOf(ctx, in.key.group, tps)
		var firsts, ends []int64
		if err == nil {
			firsts, ends, err = s.boundsOf(ctx, tps)
		}
		for i := 0; err == nil && i < len(offs); i++ {
			err = startRefusal(in.key.group, tps[i], offs[i], firsts[i], ends[i])
		}
		if err != nil {
			_ = m.Close()
			return nil, err
		}
	}
	s.log.Debug("kafka-rest: consumer instance joined", "group", in.key.group, "instance", in.key.name, "topics", topics)
	return m, nil
}

// noCommitted is the 400 of a consume with Kafka-Auto-Offset-Reset none
// whose instance would start tp, which group has no committed offset for.
func noCommitted(group string, tp transport.TopicPartition) error {
	return errorf(http.StatusBadRequest,
		"Kafka-Auto-Offset-Reset is none and group %q has no committed offset for topic %q partition %d (nothing was read or committed for it: commit an offset for it first, or consume with Kafka-Auto-Offset-Reset earliest or latest)",
		group, tp.Topic, tp.Partition)
}

// noneHint ends the 400s of a consume with Kafka-Auto-Offset-Reset none
// refused for a committed offset out of its partition's range.
const noneHint = "and none does not reset it (commit an offset within the partition first, or consume with Kafka-Auto-Offset-Reset earliest or latest)"

// startRefusal is the 400 of a consume with Kafka-Auto-Offset-Reset none
// whose instance would start tp at committed (-1: none), or nil when
// committed is within first, tp's earliest retained offset, and end, its
// next: Kafka resets an offset out of that range by its
// auto.offset.reset, and with none fails the fetch (OFFSET_OUT_OF_RANGE).
func startRefusal(group string, tp transport.TopicPartition, committed, first, end int64) error {
	switch {
	case committed < 0:
		return noCommitted(group, tp)
	case committed > end:
		return pastEnd(group, tp, committed, end)
	case committed < first:
		return errorf(http.StatusBadRequest,
			"Kafka-Auto-Offset-Reset is none and group %q's committed offset %d for topic %q partition %d is before the partition's earliest retained offset (%d): the records from it on were deleted, "+noneHint,
			group, committed, tp.Topic, tp.Partition, first)
	}
	return nil
}

// pastEnd is startRefusal's 400 for committed past end, tp's next offset.
func pastEnd(group string, tp transport.TopicPartition, committed, end int64) error {
	return errorf(http.StatusBadRequest,
		"Kafka-Auto-Offset-Reset is none and group %q's committed offset %d for topic %q partition %d is past the partition's end (%d), "+noneHint,
		group, committed, tp.Topic, tp.Partition, end)
}

// refusedStart is the 400 of a consume with Kafka-Auto-Offset-Reset none
// whose instance would start tp, which a [CommittedSubscriber] refused:
// group has no committed offset for it, or one out of its range.
func (s *Server) refusedStart(ctx context.Context, group string, tp transport.TopicPartition) error {
	tps := []transport.TopicPartition{tp}
	offs, err := s.committedOf(ctx, group, tps)
	if err != nil || offs[0] < 0 {
		return noCommitted(group, tp)
	}
	firsts, ends, err := s.boundsOf(ctx, tps)
	if err != nil {
		return errorf(http.StatusBadRequest,
			"Kafka-Auto-Offset-Reset is none and group %q's committed offset %d for topic %q partition %d is out of the partition's range, "+noneHint,
			group, offs[0], tp.Topic, tp.Partition)
	}
	if err := startRefusal(group, tp, offs[0], firsts[0], ends[0]); err != nil {
		return err
	}
	return pastEnd(group, tp, offs[0], ends[0]) // in range by now: the log moved since the refusal
}

// subscribe joins the backend's group as a Member.
func (s *Server) subscribe(ctx context.Context, sub transport.Subscription) (Member, error) {
	c, err := s.backend.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return asMember(c)
}

// asMember is c as a Member; c is closed if it is not one.
func asMember(c transport.Consumer) (Member, error) {
	m, ok := c.(Member)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("restserver: the backend's consumer %T does not implement restserver.Member", c)
	}
	return m, nil
}

// requireSomeCommitted fails with 400 when group has no committed offset on
// any partition of topics (all of which exist).
func (s *Server) requireSomeCommitted(ctx context.Context, group string, topics []string) error {
	all, err := s.backend.Topics(ctx)
	if err != nil {
		return err
	}
	var tps []transport.TopicPartition
	for _, t := range topics {
		n, ok := all[t]
		if !ok {
			return nil // let Join report (or create) it
		}
		for p := range n {
			tps = append(tps, transport.TopicPartition{Topic: t, Partition: p})
		}
	}
	offs, err := s.committedOf(ctx, group, tps)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(offs, func(off int64) bool { return off >= 0 }) {
		return nil
	}
	return errorf(http.StatusBadRequest,
		"Kafka-Auto-Offset-Reset is none and group %q has no committed offset for topics %q", group, topics)
}

// handleConsume serves GET /consume/{group}/{instance}/{topic}?timeout= and
// GET|POST /consume/{group}/{instance} with {topic}|{topics}[,timeout].
func (s *Server) handleConsume(w http.ResponseWriter, r *http.Request, seg []string) error {
	w.Header()[CarryHeader] = carryValue // the carried-produce extension (carry.go)
	var req restwire.ConsumeRequest
	var cb consumeBody
	var pooled *[]byte // the body, while cb's fields may alias it
	if len(seg) == 4 {
		discardBody(r)
		req.Topic = seg[3]
	} else {
		var err error
		if pooled, err = s.readPooledBody(w, r); err != nil {
			return err
		}
		// The fast path's extension fields (carry.go) alias the pooled
		// body, which is kept until they are decoded; encoding/json's are
		// copies.
		defer func() {
			if pooled != nil {
				putBuf(pooled)
			}
		}()
		fast, ok := restwire.DecodeCarryingConsumeRequest(*pooled)
		if ok {
			cb = consumeBody(fast)
		} else if err = decodeObject(*pooled, &cb, "a consume request"); err != nil {
			return err
		}
		req = cb.ConsumeRequest
	}
	if req.Timeout == nil {
		ms, err := queryTimeout(r)
		if err != nil {
			return err
		}
		req.Timeout = ms
	}
	timeout, err := s.cfg.timeoutFor(req.Timeout, defaultConsumeTimeout)
	if err != nil {
		return err
	}
	for _, t := range req.Topics {
		if t == "" {
			return badRequest("topics must not hold an empty name")
		}
	}
	topics := req.Topics // decoded for this request: sorted in place
	if req.Topic != "" {
		topics = append(make([]string, 0, len(req.Topics)+1), req.Topic)
		topics = append(topics, req.Topics...)
	}
	if len(topics) == 0 {
		return badRequest("topic or topics is required")
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if err := mayConsume(r, topics...); err != nil {
		return err
	}
	if err := s.mayCreateBySubscribing(r, topics); err != nil {
		return err
	}
	var cr *carry
	if cb.carried() || cb.commits() {
		cr = &carry{s: s, w: w, r: r}
	}
	if cb.commits() {
		if err := cr.parseCommit(cb.Commit); err != nil {
			return err
		}
	}
	if cb.carried() {
		// Produced before the instance is touched: a failed produce
		// consumes nothing.
		if err := cr.produce(r, cb.Produce, cb.Records); err != nil {
			return err
		}
		// Written: answered before anything waits (carry.flushProduced).
	}
	if pooled != nil {
		putBuf(pooled) // decoded: what is kept of it was copied
		pooled = nil
	}

	key := keyFor(r, seg[1], seg[2])
	if err := s.claimIncarnation(key, r, true); err != nil {
		return cr.fail(r, err)
	}
	in, created, err := s.acquireInstance(key, r, true)
	if err != nil {
		return cr.fail(r, err)
	}
	defer s.releaseInstance(in)
	if created {
		s.log.Debug("kafka-rest: consumer instance created", "group", in.key.group, "instance", in.key.name)
	}

	msgs, err := s.consume(r, in, topics, timeout, cr)
	if err != nil && in.replaced.Load() {
		// Whatever the replacement cut short (a join abandoned, a member
		// closed), the answer is that this incarnation is fenced.
		return cr.fail(r, fencedErr(in.key))
	}
	if err != nil {
		in.mu.Lock()
		neverJoined := in.member == nil
		in.mu.Unlock()
		if neverJoined || errors.Is(err, transport.ErrFenced) {
			// An instance whose creation failed does not exist; a fenced
			// one is no longer a member.
			if s.forgetInstance(in) {
				s.closeInstance(in, "consume failed")
			}
		}
		return cr.fail(r, err)
	}
	if cr != nil {
		cr.writeRecords(msgs)
		return nil
	}
	s.writeRecords(w, msgs)
	return nil
}

// writeRecords answers 200 with msgs as a ConsumedMessage array and counts
// them as delivered.
func (s *Server) writeRecords(w http.ResponseWriter, msgs []transport.Message) {
	s.delivered.Add(uint64(len(msgs)))
	s.metrics.consumed(msgs)
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, '[')
	for i := range msgs {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = restwire.AppendConsumed(*b, &msgs[i])
	}
	*b = append(*b, ']')
	writeJSON(w, http.StatusOK, *b)
}

// consume runs one long poll on in: it returns as soon as records arrive,
// or nothing when timeout passes or the server closes.
//
// cr, when not nil, is the consume's carried produce or commit: its
// headers are sent once the instance is joined, just before the long poll
// starts (see carry.ready), or, when carried records are written, before
// anything here waits (carry.flush).
func (s *Server) consume(r *http.Request, in *instance, topics []string, timeout time.Duration, cr *carry) ([]transport.Message, error) {
	// A zero timeout still takes what is there now.
	pollCtx, cancel := s.requestContext(r, max(timeout, time.Millisecond))
	defer cancel()
	select {
	case in.pollSem <- struct{}{}:
	default:
		cr.flushProduced() // another consume of the instance runs: wait
		select {
		case in.pollSem <- struct{}{}:
		case <-pollCtx.Done():
			return nil, nil // another consume of this instance held it all along
		}
	}
	defer func() { <-in.pollSem }()

	m, err := in.joinedMember(topics)
	if m == nil && err == nil {
		cr.flushProduced() // the join may take seconds
		// Joining may take longer than the poll window on a real cluster.
		joinCtx, cancelJoin := s.requestContext(r, s.cfg.maxTimeout)
		// A join of an instance that is closed meanwhile (replaced by a new
		// incarnation, which waits for this consume) is abandoned.
		stopJoin := context.AfterFunc(in.gone, cancelJoin)
		m, err = s.ensureMember(joinCtx, in, topics)
		stopJoin()
		cancelJoin()
	}
	if err != nil && errors.Is(err, context.Canceled) && in.gone.Err() != nil && !s.closing() && r.Context().Err() == nil {
		// Deleted or expired during the join: not "server is shutting
		// down", the answer a bare context.Canceled gets.
		return nil, errorf(http.StatusNotFound, "consumer instance %q of group %q was deleted during the consume: %w",
			in.key.name, in.key.group, errInstanceGone)
	}
	if err != nil {
		return nil, err
	}
	ack, acking := ackOf(r)
	if acking {
		if again := s.resend(r, in, m, ack); again != nil {
			// The client never read them: they go again, before anything
			// new, and no auto-commit passes them.
			cr.ready(m)
			return again, nil
		}
	}
	if in.cfg.autoCommit {
		in.mu.Lock()
		due := time.Since(in.lastAutoCommit) >= in.cfg.autoCommitInterval
		if due {
			in.lastAutoCommit = time.Now()
		}
		in.mu.Unlock()
		if due {
			if err := m.CommitPositions(r.Context()); err != nil {
				s.log.Warn("kafka-rest: auto-commit failed", "group", in.key.group, "instance", in.key.name, "err", err)
			}
		}
	}
	cr.ready(m)
	for {
		msgs, err := m.Poll(pollCtx)
		switch {
		case len(msgs) > 0:
			if acking {
				in.keepUnacked(m, msgs)
			}
			return msgs, nil
		case err == nil:
			continue // the backend's own poll window ended; ours goes on
		case pollCtx.Err() != nil:
			return nil, nil // timeout or shutdown: an empty answer (or the client left)
		case errors.Is(err, transport.ErrClosed):
			if in.replaced.Load() {
				return nil, fencedErr(in.key)
			}
			if _, gone := in.currentMember(); gone != nil {
				return nil, errorf(http.StatusNotFound, "consumer instance %q of group %q was deleted during the consume: %w",
					in.key.name, in.key.group, errInstanceGone)
			}
		}
		return nil, err
	}
}

// handleCommit serves GET|POST /commit/{group}/{instance}: an empty body or
// [] commits the positions reached by the instance's consumes; one
// {topic,partition,offset} or an array of them is stored exactly as given
// (the committed offset is the next offset to read, §11).
func (s *Server) handleCommit(w http.ResponseWriter, r *http.Request, seg []string) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	tps, err := decodeOneOrMany[restwire.TopicPartitionOffset](body, "a topic partition offset")
	if err != nil {
		return err
	}
	offs := make([]transport.Offset, len(tps))
	for i, tp := range tps {
		if err := validateTopicPartition(&tp, true); err != nil {
			return err
		}
		if err := mayConsume(r, tp.Topic); err != nil {
			return err
		}
		offs[i] = transport.Offset{Topic: tp.Topic, Partition: *tp.Partition, Offset: *tp.Offset}
	}
	key := keyFor(r, seg[1], seg[2])
	if err := s.claimIncarnation(key, r, false); err != nil {
		return err
	}
	in, _, err := s.acquireInstance(key, r, false)
	if err != nil {
		return err
	}
	defer s.releaseInstance(in)
	m, err := in.currentMember()
	if err != nil && in.replaced.Load() {
		return fencedErr(in.key)
	}
	if err != nil {
		return err
	}
	if m == nil {
		return errorf(http.StatusNotFound, "consumer instance %q of group %q has not joined yet", in.key.name, in.key.group)
	}
	ctx, cancel := s.requestContext(r, s.cfg.maxTimeout)
	defer cancel()
	switch {
	case len(offs) == 0:
		err = m.CommitPositions(ctx)
	case strings.EqualFold(strings.TrimSpace(r.Header.Get("Kafka-Commit-Fenced")), "true"):
		err = m.CommitOffsetsFenced(ctx, offs...)
	default:
		err = m.CommitOffsets(ctx, offs...)
	}
	if errors.Is(err, transport.ErrNotAssigned) {
		// Never a silent Success: say why, and how to go on.
		return errorf(http.StatusBadRequest, "commit by consumer instance %q of group %q refused, nothing committed: %w (a consume rejoins the group; then records are read again from the committed offsets)",
			in.key.name, in.key.group, err)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, successBody)
	return nil
}

var successBody = []byte(`{"result":"Success","status":200}`)

// validateTopicPartition checks the fields §5–§6 require of one element
// of a commit, committed, fetch or offsets body.
func validateTopicPartition(tp *restwire.TopicPartitionOffset, needOffset bool) error {
	if tp.Topic == "" {
		return badRequest("topic is required")
	}
	if tp.Partition == nil {
		return badRequest(fmt.Sprintf("partition is required (topic %q)", tp.Topic))
	}
	if *tp.Partition < 0 {
		return badRequest(fmt.Sprintf("partition must not be negative, got %d", *tp.Partition))
	}
	if needOffset {
		if tp.Offset == nil {
			return badRequest(fmt.Sprintf("offset is required (topic %q partition %d)", tp.Topic, *tp.Partition))
		}
		if *tp.Offset < 0 {
			return badRequest(fmt.Sprintf("offset must not be negative, got %d", *tp.Offset))
		}
	}
	return nil
}

// handleCommitted serves GET|POST /committed/{group}/{instance}: the group's
// committed offsets of the partitions named (one {topic,partition} or an
// array), -1 for a partition without one. The instance need not exist; with
// an empty body, the partitions the instance owns are listed.
func (s *Server) handleCommitted(w http.ResponseWriter, r *http.Request, seg []string) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	timeout, err := s.metadataTimeout(r)
	if err != nil {
		return err
	}
	tps, err := decodeOneOrMany[restwire.TopicPartitionOffset](body, "a topic partition")
	if err != nil {
		return err
	}
	key := keyFor(r, seg[1], seg[2])
	if shapeOf(body) == bodyEmpty {
		if tps, err = s.ownedPartitions(key, r); err != nil {
			return err
		}
	} else if err := s.checkOwnerOf(key, r); err != nil {
		return err
	}
	for _, tp := range tps {
		if err := validateTopicPartition(&tp, false); err != nil {
			return err
		}
		if err := mayConsume(r, tp.Topic); err != nil {
			return err
		}
	}
	ctx, cancel := s.requestContext(r, timeout)
	defer cancel()
	parts := make([]transport.TopicPartition, len(tps))
	for i, tp := range tps {
		parts[i] = transport.TopicPartition{Topic: tp.Topic, Partition: *tp.Partition}
	}
	offs, err := s.committedOf(ctx, key.group, parts)
	if err != nil {
		return err
	}
	out := make([]transport.Offset, len(tps))
	for i, tp := range parts {
		out[i] = transport.Offset{Topic: tp.Topic, Partition: tp.Partition, Offset: offs[i]}
	}
	writeOffsets(w, out)
	return nil
}

// checkOwnerOf answers 403 if the instance key exists and belongs to
// another user than r's.
func (s *Server) checkOwnerOf(key instanceKey, r *http.Request) error {
	s.mu.Lock()
	in := s.instances[key]
	s.mu.Unlock()
	if in == nil {
		return nil
	}
	return checkOwner(r, in)
}

func (s *Server) ownedPartitions(key instanceKey, r *http.Request) ([]restwire.TopicPartitionOffset, error) {
	in, _, err := s.acquireInstance(key, r, false)
	if statusOf(err) == http.StatusForbidden || errors.Is(err, transport.ErrFenced) {
		return nil, err
	}
	if err != nil {
		return nil, badRequest(fmt.Sprintf("name the topic partitions in the body: %v", err))
	}
	defer s.releaseInstance(in)
	m, err := in.currentMember()
	if err != nil || m == nil {
		return nil, nil
	}
	var tps []restwire.TopicPartitionOffset
	for topic, parts := range m.Assignment() {
		for _, p := range parts {
			tps = append(tps, restwire.TopicPartitionOffset{Topic: topic, Partition: &p})
		}
	}
	slices.SortFunc(tps, func(a, b restwire.TopicPartitionOffset) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(*a.Partition - *b.Partition)
	})
	return tps, nil
}

// mayCreateBySubscribing refuses, with 404 before anything is made, a
// consume naming a topic that does not exist when r's user may not produce
// to it: subscribing auto-creates topics, and a user with only the right
// to read must not be able to fill the broker's topic cap.
func (s *Server) mayCreateBySubscribing(r *http.Request, topics []string) error {
	p := principalOf(r)
	if p == nil || p.admin {
		return nil
	}
	for _, t := range topics {
		if mayProduce(r, t) == nil {
			continue
		}
		// Partition 0 exists in every topic: one lookup tells whether the
		// topic does, without listing every topic on each consume.
		_, _, err := s.backend.Offsets(r.Context(), transport.TopicPartition{Topic: t})
		if errors.Is(err, transport.ErrUnknownTopic) {
			return errorf(http.StatusNotFound, "unknown topic %q: it does not exist, and only a user who may produce to it can create it by consuming: %w", t, transport.ErrUnknownTopic)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// handleDeleteConsumer serves POST|DELETE /delete-consumer/{group}/{instance}:
// the instance commits its positions (if auto-commit is on), leaves the
// group (its partitions go to the other members at once) and is forgotten.
// An unknown instance is 404.
func (s *Server) handleDeleteConsumer(w http.ResponseWriter, r *http.Request, seg []string) error {
	discardBody(r)
	key := keyFor(r, seg[1], seg[2])
	if err := s.claimIncarnation(key, r, false); err != nil {
		return err
	}
	var gone []*instance
	s.mu.Lock()
	if err := s.staleIncarnationLocked(key, r); err != nil {
		s.mu.Unlock()
		return err
	}
	if in := s.instances[key]; in != nil {
		gone = append(gone, in)
		delete(s.instances, key)
	} else if isAdmin(r) {
		// An admin's delete reaches every user's instance of that name.
		for k, in := range s.instances {
			if k.group == key.group && k.name == key.name {
				gone = append(gone, in)
				delete(s.instances, k)
			}
		}
	}
	s.mu.Unlock()
	if len(gone) == 0 {
		return errorf(http.StatusNotFound, "consumer instance %q of group %q does not exist", key.name, key.group)
	}
	s.closeInstances(gone, "deleted")
	writeJSON(w, http.StatusOK, successBody)
	return nil
}

// handleConsumers serves GET /consumers: the instances this server knows,
// grouped (§6.4), sorted by group, instance, topic and partition. It needs
// the admin right.
func (s *Server) handleConsumers(w http.ResponseWriter, r *http.Request, _ []string) error {
	discardBody(r)
	if err := mayAdmin(r, "list the consumers"); err != nil {
		return err
	}
	s.mu.Lock()
	insts := make([]*instance, 0, len(s.instances))
	for _, in := range s.instances {
		insts = append(insts, in)
	}
	s.mu.Unlock()
	type row struct {
		key    instanceKey
		assign map[string][]int32
	}
	rows := make([]row, 0, len(insts))
	for _, in := range insts {
		m, err := in.currentMember()
		if err != nil {
			continue // closed meanwhile
		}
		rw := row{key: in.key}
		if m != nil {
			rw.assign = m.Assignment()
		}
		rows = append(rows, rw)
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.key.group, b.key.group); c != 0 {
			return c
		}
		return strings.Compare(a.key.name, b.key.name)
	})
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, '[')
	for i, rw := range rows {
		switch {
		case i == 0 || rw.key.group != rows[i-1].key.group:
			if i > 0 {
				*b = append(*b, "]},"...)
			}
			*b = append(*b, `{"name":`...)
			*b = restwire.AppendString(*b, rw.key.group, restwire.EscapeServer)
			*b = append(*b, `,"instances":[`...)
		default:
			*b = append(*b, ',')
		}
		*b = append(*b, `{"name":`...)
		*b = restwire.AppendString(*b, rw.key.name, restwire.EscapeServer)
		*b = append(*b, `,"topics":[`...)
		topics := make([]string, 0, len(rw.assign))
		for t := range rw.assign {
			topics = append(topics, t)
		}
		slices.Sort(topics)
		for j, t := range topics {
			if j > 0 {
				*b = append(*b, ',')
			}
			*b = append(*b, `{"topic":`...)
			*b = restwire.AppendString(*b, t, restwire.EscapeServer)
			*b = append(*b, `,"partitions":[`...)
			for k, p := range slices.Sorted(slices.Values(rw.assign[t])) {
				if k > 0 {
					*b = append(*b, ',')
				}
				*b = strconv.AppendInt(*b, int64(p), 10)
			}
			*b = append(*b, "]}"...)
		}
		*b = append(*b, "]}"...)
	}
	if len(rows) > 0 {
		*b = append(*b, "]}"...)
	}
	*b = append(*b, ']')
	writeJSON(w, http.StatusOK, *b)
	return nil
}

// janitor closes idle instances until Close.
func (s *Server) janitor(every time.Duration) {
	defer close(s.janitorDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closeCtx.Done():
			return
		case now := <-t.C:
			s.expireIdle(now)
		}
	}
}

func (s *Server) expireIdle(now time.Time) {
	limit := now.Add(-s.cfg.instanceExpiry).UnixNano()
	var idle []*instance
	s.mu.Lock()
	for k, in := range s.instances {
		if in.busy.Load() == 0 && in.lastUsed.Load() <= limit {
			delete(s.instances, k)
			idle = append(idle, in)
		}
	}
	s.forgetIncarnationsLocked(time.Unix(0, limit))
	s.mu.Unlock()
	s.closeInstances(idle, "idle")
	for _, in := range idle {
		s.log.Info("kafka-rest: idle consumer instance expired", "group", in.key.group, "instance", in.key.name)
	}
}

// maxParallelCloses bounds the instances closeInstances closes at once.
const maxParallelCloses = 64

// closeInstances closes insts (removed from the registry by the caller)
// as closeInstance does, several at once: each close is a commit (up to
// closeCommitTimeout) and a leave of the group, round trips to the broker
// (seconds each when it is slow or unreachable), and the instances are
// independent. One after the other, closing the server's thousand
// instances took minutes, past a supervisor's stop timeout.
//
// Every instance commits before any leaves: a leave rebalances its group,
// and a member of the same group still to commit lost the positions of
// the partitions the rebalance moved (or reset) — its records were read
// again after the restart
// (TestBreak21ParallelCloseOfOneGroupCommitsEveryPosition).
func (s *Server) closeInstances(insts []*instance, why string) {
	if len(insts) == 1 {
		s.closeInstance(insts[0], why)
		return
	}
	members := make([]Member, len(insts))
	closeEach(len(insts), func(i int) {
		if m := insts[i].detach(); m != nil {
			members[i] = m
			s.commitOnClose(insts[i], m)
		}
	})
	closeEach(len(insts), func(i int) {
		if members[i] != nil {
			s.leave(insts[i], members[i], why)
		}
	})
}

// closeEach calls f for 0, ..., n-1, up to maxParallelCloses at once, and
// returns when every call has.
func closeEach(n int, f func(i int)) {
	sem := make(chan struct{}, maxParallelCloses)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

func janitorInterval(expiry time.Duration) time.Duration {
	return min(max(expiry/4, 5*time.Millisecond), 30*time.Second)
}

// queryTimeout reads ?timeout= (ms).
func queryTimeout(r *http.Request) (*float64, error) {
	v := r.URL.Query().Get("timeout")
	if v == "" {
		return nil, nil
	}
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("timeout must be a number of milliseconds, got %q", v))
	}
	return &ms, nil
}

// metadataTimeout is the ?timeout= of committed and offsets (default 10 s),
// the longest the backend may take.
func (s *Server) metadataTimeout(r *http.Request) (time.Duration, error) {
	ms, err := queryTimeout(r)
	if err != nil {
		return 0, err
	}
	d, err := s.cfg.timeoutFor(ms, defaultMetadataTimeout)
	if err != nil {
		return 0, err
	}
	return max(d, time.Millisecond), nil
}

func writeOffsets(w http.ResponseWriter, out []transport.Offset) {
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, '[')
	for i, o := range out {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = restwire.AppendTopicPartitionOffset(*b, o.Topic, o.Partition, o.Offset)
	}
	*b = append(*b, ']')
	writeJSON(w, http.StatusOK, *b)
}
