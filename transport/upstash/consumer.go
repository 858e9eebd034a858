package upstash

import (
	"cmp"
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

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// consumer is one consumer-group instance on the REST server.
type consumer struct {
	t           *Transport
	key         memberKey
	topics      []string
	header      http.Header // instance configuration and incarnation, sent with every consume
	commitHdr   http.Header // Kafka-Commit-Fenced and the incarnation
	deleteHdr   http.Header // the incarnation
	consumePath string      // "/consume/{group}/{instance}", escaped
	consumeURL  string      // the base URL and consumePath
	commitPath  string
	deletePath  string
	// committedPath is "/committed/{group}/{instance}", escaped: the
	// keep-alive's request (keepalive.go).
	committedPath string

	reqCtx    context.Context // of in-flight consume requests; ends last at Close
	reqCancel context.CancelFunc
	wg        sync.WaitGroup // in-flight consume goroutine, keep-alive goroutine
	stopped   chan struct{}  // closed at Close or fence: wakes blocked Polls
	// liveCtx ends with stopped (and reqCtx): the keep-alive's.
	liveCtx    context.Context
	liveCancel context.CancelFunc
	// consumed is when the last consume request ended (monoNow): the
	// keep-alive is due an interval after it, and stops a max poll
	// interval after it (keepalive.go).
	consumed atomic.Int64

	// carries says the server takes records with a consume (it sent
	// restserver.CarryHeader); noteCarry, made once, notes it (carry.go).
	carries   atomic.Bool
	noteCarry func(*http.Response)
	// ride is a Commit waiting for the next consume to carry it (guarded
	// by mu).
	ride *commitRide

	mu       sync.Mutex
	ack      []string // restwire.AckHeader's value for the next consume (see acked)
	buf      []transport.Message
	inflight *pollCall
	closed   bool
	fenced   bool
	stopOnce sync.Once

	closeOnce sync.Once
	closeErr  error
}

// pollCall is one consume request. It runs on its own goroutine under the
// consumer's lifetime context, not the caller's: if the caller's context ends
// first, the answer is kept for the next Poll instead of being dropped after
// the server has already moved the instance's position past those records.
type pollCall struct {
	started time.Time
	done    chan struct{}
	msgs    []transport.Message
	err     error
}

// Subscribe creates a consumer-group instance on the server and joins the
// group: POST /consume/{group}/{instance} with auto-commit off,
// Kafka-Auto-Offset-Reset from s.Start, Kafka-Session-Timeout-Ms from
// s.SessionTimeout and Kafka-Max-Poll-Interval-Ms from s.MaxPollInterval
// (each when set; the last is an extension of the project's REST server,
// which other servers ignore). Those headers go with every consume, so an
// instance the server expired for idleness is re-created with the same
// settings.
//
// Liveness: the member is the server's (one group member per REST
// instance), and on the project's REST server it heartbeats by itself while
// the instance exists, so this consumer sends no heartbeats to the group.
// What it must keep alive is the instance: the server closes one that no
// request has named for its idle expiry (kafka-rest's --instance-expiry, 5
// minutes by default), and a busy user that does not Poll sends no
// consume. So while no consume is in flight and the user has polled within
// its max poll interval, the consumer names its instance itself every
// [WithInstanceKeepAlive] (1 minute by default) in which nothing else did,
// with GET /committed/{group}/{instance}, a read that changes nothing. A
// busy user thus keeps its partitions until s.MaxPollInterval (5 minutes,
// the server's default, when zero) passes without a Poll: then the
// server drops the member (a Commit fails with transport.ErrNotAssigned
// and the next Poll rejoins), and the keep-alives stop, so that the
// instance of a stuck user expires too (on a server that does not enforce
// the max poll interval, as kafka-rest over Kafka, that expiry is what
// frees the partitions: up to the max poll interval plus the expiry after
// the last Poll). With keep-alives off ([WithInstanceKeepAlive] 0), or an
// interval near the server's expiry, the instance is lost after the
// expiry without a Poll or Commit, whatever s.MaxPollInterval.
//
// s.OnRevoked is never called: the REST API has no way to tell a client
// that its instance lost partitions. A Commit naming a partition the
// member lost fails with transport.ErrNotAssigned, and its records are
// delivered again to their new owner.
//
// An empty s.Group or s.Instance takes the transport's default ([WithGroup],
// [WithInstance]); without one, Group is required and Instance is a fresh
// UUID.
//
// A stable instance name is static membership: a process that crashed and
// comes back with the same group and instance takes its partitions back at
// once, instead of waiting for the server to drop the dead instance (its max
// poll interval or idle expiry, minutes), and resumes from the group's
// committed offsets, so records delivered to the dead process but not
// committed are delivered again. Each Subscribe makes a new incarnation
// token, sent as the header Kafka-Instance-Incarnation with every consume,
// commit and delete of the instance; and an instance named by the caller is
// first deleted on the server (POST /delete-consumer, an unknown one is
// fine). The project's REST server replaces an instance of an earlier
// incarnation without committing its positions, and from then on answers
// the earlier incarnation's requests with a 404 that this transport reports
// as transport.ErrFenced: of two live processes with the same instance, the
// older one is fenced (its Poll and Commit fail with transport.ErrFenced),
// as Kafka fences a static member. Other servers ignore the header; there
// the deletion alone gives the restart from the committed offsets, but two
// live processes with one instance name share it unfenced. A second
// Subscribe on this Transport with the same group and instance replaces the
// first in the same way.
//
// Subscribe makes the first consume call itself, with no server-side wait,
// and keeps what it returns for the first Poll; on the
// project's REST server this call joins the group, so starting positions are
// fixed when Subscribe returns. (On a server that joins asynchronously, as
// Upstash did, they may not be.)
//
// The returned Consumer is safe for concurrent use. Its Poll long-polls up
// to the poll window ([WithPollWindow]); if ctx ends first it returns
// ctx.Err() and keeps the request's answer for the next Poll, so no record
// is lost to a cancelled Poll. Commit posts (highest offset + 1) per
// partition; a partition the member does not own fails with
// transport.ErrNotAssigned. Close deletes the instance (bounded by
// [WithCloseTimeout]) and is idempotent. After Close, Poll and Commit fail
// with transport.ErrClosed; after replacement, with transport.ErrFenced.
//
// A consume whose answer is lost in transit (a connection reset, a proxy
// that cuts the body) fails that Poll. On the project's REST server the
// next Poll gets the same records again: every consume says, with the
// header Kafka-Consume-Ack, which answer this consumer last read whole,
// and the server sends an answer again until it is acknowledged. Other
// servers ignore the header and have moved the instance past those
// records, which come back only after a rebalance or restart, from the
// committed offsets.
//
// Errors: transport.ErrInvalid for a bad Subscription, errors wrapping
// transport.ErrUnknownTopic when the server does not know a topic,
// transport.ErrClosed after Close.
//
// Subscribe as a whole is bounded by [WithSetupTimeout] as well as ctx.
func (t *Transport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	return setup(ctx, t, func(ctx context.Context) (transport.Consumer, error) { return t.subscribe(ctx, s) })
}

func (t *Transport) subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, errClosed("subscribe")
	}
	if s.Group == "" {
		s.Group = t.cfg.group
	}
	explicit := s.Instance != "" || t.cfg.instance != ""
	if s.Instance == "" {
		s.Instance = t.cfg.instance
	}
	if s.Instance == "" {
		s.Instance = "kafkarpc-" + uuid.NewString()
	}
	topics, err := checkSubscription(s)
	if err != nil {
		return nil, err
	}

	c := t.newConsumer(s, topics)

	// Register first, so a concurrent Close deletes this instance too.
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.reqCancel()
		return nil, errClosed("subscribe")
	}
	old := t.members[c.key]
	t.members[c.key] = c
	t.mu.Unlock()

	if explicit {
		var err error
		if old != nil {
			old.fence()
			err = old.deleteAndSettle(ctx)
		} else {
			err = c.deleteInstance(ctx)
		}
		if err != nil {
			c.abandon(false)
			return nil, withOp(subscribeOp(s, err)+": removing the previous instance", err)
		}
	}
	// The first consume ends early if the transport closes meanwhile.
	jctx, jcancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.reqCtx, jcancel)
	joinStarted := time.Now()
	msgs, err := c.consume(jctx, joinWait, nil)
	stop()
	jcancel()
	c.mu.Lock()
	gone, fenced := c.stateErr("subscribe"), c.fenced
	c.mu.Unlock()
	if gone != nil {
		// Closed by Transport.Close while joining, the instance this
		// consume made is nobody's; replaced, it is the successor's.
		c.abandon(!fenced)
		return nil, gone
	}
	if err != nil {
		// The server may hold a half-made instance: one that joined the
		// group holds partitions until it expires (minutes), so that the
		// next member with another instance id (the same Server's next
		// Serve, a restarted worker) is not given them. Not worth waiting
		// on if the server is unreachable; once the caller's time is up
		// (a stop, or the setup timeout, which bounds Subscribe as a
		// whole), the delete is bounded by abandonAfterCancel, so that a
		// silent server holds the caller briefly at most.
		var ce *connError
		var he *Error
		reachable := !errors.As(err, &ce) && !(errors.As(err, &he) && he.Temporary())
		switch {
		case !reachable:
			c.abandon(false)
		case ctx.Err() != nil:
			// The canceled consume may still be on its way to the server
			// and make the instance after a delete sent at once: delete
			// once it has had sendGrace to arrive, as deleteAndSettle does.
			c.abandonWithin(min(c.t.cfg.closeTimeout, abandonAfterCancel), joinStarted.Add(sendGrace))
		default:
			c.abandon(true)
		}
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, withOp(subscribeOp(s, err), err)
	}
	c.mu.Lock()
	c.buf = msgs
	if c.stateErr("subscribe") == nil {
		c.startKeepAlive(s.MaxPollInterval)
	}
	c.mu.Unlock()
	return c, nil
}

// subscribeOp names a subscribe that failed with err: "subscribe
// group/instance", or just "subscribe" when err names them already (the
// path of a request to the instance does).
func subscribeOp(s transport.Subscription, err error) string {
	if msg := err.Error(); strings.Contains(msg, s.Group) && strings.Contains(msg, s.Instance) {
		return "subscribe"
	}
	return "subscribe " + s.Group + "/" + s.Instance
}

// newConsumer makes the consumer of a checked subscription, not yet
// registered nor joined.
func (t *Transport) newConsumer(s transport.Subscription, topics []string) *consumer {
	c := &consumer{
		t:             t,
		key:           memberKey{s.Group, s.Instance},
		topics:        topics,
		header:        http.Header{},
		consumePath:   restPath("consume", s.Group, s.Instance),
		consumeURL:    t.baseURL + restPath("consume", s.Group, s.Instance),
		commitPath:    restPath("commit", s.Group, s.Instance),
		deletePath:    restPath("delete-consumer", s.Group, s.Instance),
		committedPath: restPath("committed", s.Group, s.Instance),
		stopped:       make(chan struct{}),
		ack:           []string{restwire.AckNone},
	}
	// One incarnation per Subscribe: the project's REST server replaces an
	// instance named by an earlier incarnation (a crashed process) and
	// fences it; other servers ignore the header.
	incarnation := uuid.NewString()
	c.header.Set(incarnationHeader, incarnation)
	c.commitHdr = http.Header{"Kafka-Commit-Fenced": {"true"}, incarnationHeader: {incarnation}}
	c.deleteHdr = http.Header{incarnationHeader: {incarnation}}
	c.header.Set("Kafka-Enable-Auto-Commit", "false")
	c.header.Set("Kafka-Auto-Offset-Reset", s.Start.String())
	if s.SessionTimeout > 0 {
		c.header.Set("Kafka-Session-Timeout-Ms", strconv.FormatInt(s.SessionTimeout.Milliseconds(), 10))
	}
	if s.MaxPollInterval > 0 {
		c.header.Set("Kafka-Max-Poll-Interval-Ms", strconv.FormatInt(s.MaxPollInterval.Milliseconds(), 10))
	}
	c.reqCtx, c.reqCancel = context.WithCancel(t.ctx)
	c.liveCtx, c.liveCancel = context.WithCancel(c.reqCtx)
	c.noteCarry = c.sawAnswer
	return c
}

func checkSubscription(s transport.Subscription) ([]string, error) {
	switch {
	case s.Group == "":
		return nil, fmt.Errorf("upstash: subscribe: empty group (set Subscription.Group or WithGroup): %w", transport.ErrInvalid)
	case len(s.Topics) == 0:
		return nil, fmt.Errorf("upstash: subscribe: no topics: %w", transport.ErrInvalid)
	case s.Start != transport.StartLatest && s.Start != transport.StartEarliest:
		return nil, fmt.Errorf("upstash: subscribe: unknown start %v: %w", s.Start, transport.ErrInvalid)
	case s.SessionTimeout < 0:
		return nil, fmt.Errorf("upstash: subscribe: negative session timeout %v: %w", s.SessionTimeout, transport.ErrInvalid)
	case s.SessionTimeout > 0 && s.SessionTimeout < time.Millisecond:
		return nil, fmt.Errorf("upstash: subscribe: session timeout %v is under 1ms: %w", s.SessionTimeout, transport.ErrInvalid)
	case s.MaxPollInterval < 0:
		return nil, fmt.Errorf("upstash: subscribe: negative max poll interval %v: %w", s.MaxPollInterval, transport.ErrInvalid)
	case s.MaxPollInterval > 0 && s.MaxPollInterval < time.Millisecond:
		return nil, fmt.Errorf("upstash: subscribe: max poll interval %v is under 1ms: %w", s.MaxPollInterval, transport.ErrInvalid)
	}
	topics := make([]string, 0, len(s.Topics))
	for _, tp := range s.Topics {
		if tp == "" {
			return nil, fmt.Errorf("upstash: subscribe: empty topic name: %w", transport.ErrInvalid)
		}
		if !slices.Contains(topics, tp) {
			topics = append(topics, tp)
		}
	}
	return topics, nil
}

// joinWait is the server-side wait of the consume Subscribe makes: none.
// The project's REST server joins the group first and then answers what is
// there at once. (An earlier version of it could answer [] without joining
// when given no wait; a few ms of wait here would cover such a server.)
const joinWait = 0

// consume makes one POST /consume with the given server-side wait; ride,
// when not nil, is a Commit that rides on it (carry.go).
func (c *consumer) consume(ctx context.Context, wait time.Duration, ride *commitRide) ([]transport.Message, error) {
	var offsets []byte
	onResponse := c.noteCarry
	if ride != nil {
		offsets = ride.offsets
		onResponse = c.rideResponse(ride)
		defer ride.unanswered()
	}
	body := c.consumeBody(wait, offsets)
	var ans messagesAnswer
	err := c.t.call(ctx, request{method: http.MethodPost, path: c.consumePath, url: c.consumeURL, header: c.header, body: body, wait: wait, onResponse: onResponse, ack: c.ackValue()}, &ans)
	c.noteConsumed()
	if err != nil {
		return nil, err
	}
	c.acked(ans.msgs)
	return c.keep(ans.msgs), nil
}

// ackValue returns restwire.AckHeader's value for the next consume.
func (c *consumer) ackValue() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ack
}

// acked notes that an answer with msgs (as the server sent them) was read
// whole: the next consume acknowledges it. The project's REST server keeps
// an instance's last answer until then, and sends it again to a consume
// that does not acknowledge it (restserver.AckHeader), so an answer cut
// off on its way is not lost; other servers ignore the header.
func (c *consumer) acked(msgs []transport.Message) {
	if len(msgs) == 0 {
		return
	}
	v := []string{restwire.AckToken(msgs)}
	c.mu.Lock()
	c.ack = v
	c.mu.Unlock()
}

// keep returns, in place, the records of msgs this consumer could have been
// given: of its topics, in a partition in [0, WithMaxPartitions), at an
// offset in [0, MaxInt64). The others are dropped and counted in Stats, so a
// server cannot make a consumer handle (and commit) records of topics or
// positions it never asked for.
func (c *consumer) keep(msgs []transport.Message) []transport.Message {
	out := msgs[:0]
	for _, m := range msgs {
		if !slices.Contains(c.topics, m.Topic) || m.Partition < 0 || int(m.Partition) >= c.t.cfg.maxPartitions ||
			m.Offset < 0 || m.Offset == math.MaxInt64 {
			c.t.dropped.Add(1)
			continue
		}
		out = append(out, m)
	}
	clear(msgs[len(out):])
	return out
}

// Poll returns the records the server has for this instance, waiting up to
// the poll window ([WithPollWindow]) or until ctx ends, whichever is sooner.
// An empty result with a nil error means the window ended without records.
// When ctx ends first, Poll returns ctx.Err() and the request stays in
// flight: its records are returned by the next Poll.
//
// Poll and Commit may be called from different goroutines. After Close, Poll
// returns an error wrapping transport.ErrClosed; after being replaced by a
// later Subscribe with the same group and instance, one wrapping
// transport.ErrFenced.
func (c *consumer) Poll(ctx context.Context) ([]transport.Message, error) {
	for {
		c.mu.Lock()
		if err := c.stateErr("poll"); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if len(c.buf) > 0 {
			out := c.buf
			c.buf = nil
			c.mu.Unlock()
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		call := c.inflight
		if call == nil {
			call = c.startPoll(c.t.pollWait(ctx))
			c.inflight = call
		}
		c.mu.Unlock()

		select {
		case <-call.done:
			c.mu.Lock()
			if c.inflight != call { // another Poll took this answer
				c.mu.Unlock()
				continue
			}
			c.inflight = nil
			if err := c.stateErr("poll"); err != nil {
				c.mu.Unlock()
				return nil, err
			}
			if errors.Is(call.err, transport.ErrFenced) {
				// The server replaced this member: stay out rather than
				// re-create the instance with the next consume.
				c.fenced = true
				c.mu.Unlock()
				c.stop()
				return nil, fmt.Errorf("upstash: poll %s/%s: %w", c.key.group, c.key.instance, call.err)
			}
			c.mu.Unlock()
			if call.err != nil {
				return nil, fmt.Errorf("upstash: poll %s/%s: %w", c.key.group, c.key.instance, call.err)
			}
			return call.msgs, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.stopped:
			// Closed or fenced: the loop reports which.
		}
	}
}

// stateErr returns the error for a closed or fenced consumer. Called with
// c.mu held.
func (c *consumer) stateErr(op string) error {
	switch {
	case c.closed:
		return errClosed(op)
	case c.fenced:
		return fmt.Errorf("upstash: %s %s/%s: %w", op, c.key.group, c.key.instance, transport.ErrFenced)
	}
	return nil
}

// pollWait is how long one Poll asks the server to wait: the poll window, or
// when ctx ends sooner, a little less than ctx's remaining time, so the
// (possibly empty) answer arrives before the caller gives up.
func (t *Transport) pollWait(ctx context.Context) time.Duration {
	wait := t.cfg.pollWindow
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		margin := min(max(left/10, 2*time.Millisecond), 100*time.Millisecond)
		wait = min(wait, left-margin)
	}
	return max(wait, 0)
}

// startPoll starts a consume request. Called with c.mu held.
func (c *consumer) startPoll(wait time.Duration) *pollCall {
	call := &pollCall{started: time.Now(), done: make(chan struct{})}
	ride := c.takeRide()
	c.wg.Go(func() {
		defer close(call.done)
		msgs, err := c.consume(c.reqCtx, wait, ride)
		if msgs == nil && err == nil {
			msgs = []transport.Message{}
		}
		call.msgs, call.err = msgs, err
	})
	return call
}

// Commit stores, for each partition among msgs, the highest offset + 1 as the
// group's next offset to read (POST /commit/{group}/{instance}). Commit with
// no msgs makes no request. On the project's REST server, a Commit waits
// up to 2 ms for this consumer's next consume and rides on it (see
// PollCarrying), else it goes alone. A partition this instance does not own fails
// with an error wrapping transport.ErrNotAssigned, if the server says so.
// After Close it returns an error wrapping transport.ErrClosed; after being
// replaced, one wrapping transport.ErrFenced.
func (c *consumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	c.mu.Lock()
	err := c.stateErr("commit")
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	offsets, err := commitOffsets(msgs)
	if err != nil {
		return err
	}
	body, err := marshal(offsets)
	if err != nil {
		return err
	}
	if err, rode := c.commitRiding(ctx, body); rode {
		if err != nil {
			return fmt.Errorf("upstash: commit %s/%s: %w", c.key.group, c.key.instance, err)
		}
		return nil
	}
	// Fenced: a commit from before the partition moved away and came back
	// is refused by the project's REST server (other servers ignore the
	// header), so the committed offset never goes backwards.
	err = c.t.call(ctx, request{method: http.MethodPost, path: c.commitPath, header: c.commitHdr, body: body}, nil)
	if err != nil {
		return fmt.Errorf("upstash: commit %s/%s: %w", c.key.group, c.key.instance, err)
	}
	return nil
}

// incarnationHeader names this Subscribe's incarnation of its instance
// (restserver.IncarnationHeader, an extension of the project's REST server).
const incarnationHeader = "Kafka-Instance-Incarnation"

// commitOffsets returns, per partition, the highest offset among msgs + 1,
// sorted by topic and partition.
func commitOffsets(msgs []transport.Message) ([]restwire.TopicPartitionOffset, error) {
	next := make(map[transport.TopicPartition]int64, 1)
	for i, m := range msgs {
		if m.Topic == "" || m.Partition < 0 || m.Offset < 0 {
			return nil, fmt.Errorf("upstash: commit: message %d: bad position %q/%d@%d: %w", i, m.Topic, m.Partition, m.Offset, transport.ErrInvalid)
		}
		tp := transport.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		next[tp] = max(next[tp], m.Offset+1)
	}
	tps := make([]transport.TopicPartition, 0, len(next))
	for tp := range next {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b transport.TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	out := make([]restwire.TopicPartitionOffset, len(tps))
	parts, offs := make([]int32, len(tps)), make([]int64, len(tps)) // what out points to
	for i, tp := range tps {
		parts[i], offs[i] = tp.Partition, next[tp]
		out[i] = restwire.TopicPartitionOffset{Topic: tp.Topic, Partition: &parts[i], Offset: &offs[i]}
	}
	return out, nil
}

// Close leaves the group: it deletes the instance on the server (POST
// /delete-consumer, best effort, bounded by [WithCloseTimeout]), which hands
// its partitions to the other members from the committed offsets, and wakes
// a blocked Poll with transport.ErrClosed. A consumer replaced by a later
// Subscribe deletes nothing, as the instance now belongs to its successor.
// Close returns the deletion's error, if any (an instance the server no
// longer knows is not an error); it is idempotent, and later calls return
// the same result.
func (c *consumer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		fenced := c.fenced
		c.mu.Unlock()
		c.stop()
		defer c.t.forget(c)
		if fenced {
			c.stopRequests()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.t.cfg.closeTimeout)
		defer cancel()
		if err := c.deleteAndSettle(ctx); err != nil {
			c.t.log.Warn("upstash: deleting consumer instance failed",
				"group", c.key.group, "instance", c.key.instance, "error", err)
			c.closeErr = fmt.Errorf("upstash: close %s/%s: %w", c.key.group, c.key.instance, err)
		}
	})
	return c.closeErr
}

// stop wakes blocked Polls; they report closed or fenced. It ends the
// keep-alive too.
func (c *consumer) stop() {
	c.stopOnce.Do(func() {
		close(c.stopped)
		c.liveCancel()
	})
}

// stopRequests ends the in-flight consume request, if any, and the
// keep-alive, and waits for them.
func (c *consumer) stopRequests() {
	c.reqCancel()
	c.wg.Wait()
}

const (
	// sendGrace is how long after a consume was started deleteAndSettle
	// assumes it may still be on its way to the server.
	sendGrace = 50 * time.Millisecond
	// settleWait bounds how long deleteAndSettle waits for an in-flight
	// consume to answer after the instance was deleted.
	settleWait = 200 * time.Millisecond
)

// deleteAndSettle deletes c's instance on the server and ends c's in-flight
// consume request without leaving a stray instance behind.
//
// Cancelling a request in the client does not unsend it: a consume on its
// way may reach the server after the deletion and, as every consume does,
// create the instance again; that stray member takes partitions from the
// group (records are then delivered twice) until the server expires it. So
// the in-flight consume is not cancelled but given time to arrive (sendGrace
// after it started) before the deletion, which makes the server end it at
// once with 404. Should it answer anything else, it re-created the instance,
// and a second deletion removes that.
func (c *consumer) deleteAndSettle(ctx context.Context) error {
	c.mu.Lock()
	call := c.inflight
	c.mu.Unlock()
	pending := call != nil && !isDone(call.done)
	if pending {
		waitUntil(ctx, call.started.Add(sendGrace), call.done)
	}
	err := c.deleteInstance(ctx)
	if !pending {
		c.stopRequests()
		return err
	}
	recreated := true
	timer := time.NewTimer(settleWait)
	select {
	case <-call.done:
		var he *Error
		recreated = !(errors.As(call.err, &he) && he.Status == http.StatusNotFound)
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	c.stopRequests()
	if recreated {
		if err2 := c.deleteInstance(ctx); err == nil {
			err = err2
		}
	}
	return err
}

// waitUntil waits until t, or until done (nil: never) or ctx ends.
func waitUntil(ctx context.Context, t time.Time, done <-chan struct{}) {
	wait := time.Until(t)
	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// deleteInstance removes the instance on the server; an unknown one is fine.
func (c *consumer) deleteInstance(ctx context.Context) error {
	err := c.t.call(ctx, request{method: http.MethodPost, path: c.deletePath, header: c.deleteHdr}, nil)
	var he *Error
	if errors.As(err, &he) && he.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// fence marks c as replaced by a newer Subscribe with the same instance and
// wakes its blocked Polls, which return transport.ErrFenced. Its in-flight
// consume is left to the successor's deleteAndSettle.
func (c *consumer) fence() {
	c.mu.Lock()
	c.fenced = true
	c.mu.Unlock()
	c.stop()
}

// abandon undoes a failed Subscribe: with deleteRemote, best-effort removal
// of whatever the server created.
func (c *consumer) abandon(deleteRemote bool) {
	var limit time.Duration
	if deleteRemote {
		limit = c.t.cfg.closeTimeout
	}
	c.abandonWithin(limit, time.Time{})
}

// abandonAfterCancel bounds the delete of a half-made instance by a
// Subscribe whose ctx ended while it joined.
const abandonAfterCancel = time.Second

// abandonWithin is abandon, deleting the remote instance within limit
// (none when limit is 0), not before notBefore.
func (c *consumer) abandonWithin(limit time.Duration, notBefore time.Time) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.stopRequests()
	c.t.forget(c)
	if limit <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	waitUntil(ctx, notBefore, nil)
	if err := c.deleteInstance(ctx); err != nil {
		c.t.log.Debug("upstash: cleanup after failed subscribe", "group", c.key.group, "instance", c.key.instance, "error", err)
	}
}

// forget unregisters c unless a successor took its key.
func (t *Transport) forget(c *consumer) {
	t.mu.Lock()
	if t.members[c.key] == c {
		delete(t.members, c.key)
	}
	t.mu.Unlock()
}

// ackHeader is restwire.AckHeader (restserver.AckHeader), in canonical form.
const ackHeader = restwire.AckHeader
