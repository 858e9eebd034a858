package upstash

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The instance keep-alive. A REST server closes a consumer instance that
// no request has named for its idle expiry (kafka-rest's
// --instance-expiry, 5 minutes by default), and the instance is the group
// member: closed, its partitions go to the other members, which read the
// records it took and has not committed again. An owner that is busy with
// what it polled (an rpc server whose workers all run long handlers) sends
// no consume for that long, so while no consume is in flight the consumer
// names its instance itself, every [WithInstanceKeepAlive], with GET
// /committed/{group}/{instance} and no body: the server lists the
// committed offsets of the partitions the instance owns, which is a read,
// and marks the instance used. (It is never a commit: an empty commit
// commits the instance's positions, past records still being handled.)
//
// It stops once the owner has not polled for its max poll interval
// (Subscription.MaxPollInterval, else serverMaxPollInterval): a member
// that long without a poll is stuck, its server drops it (the project's
// REST server over the embedded broker does; over Kafka, where the server
// does not enforce the interval, the idle expiry that follows is what
// frees its partitions), and the keep-alive must not keep it in the group.
// It stops for good when the server says the instance was replaced
// (transport.ErrFenced: the consumer is then fenced, as by a Poll that met
// the fence), and until the next consume when the server
// refuses it otherwise (the instance is gone: only a consume makes one).

// serverMaxPollInterval is the max poll interval a member takes on the
// server when its consumer sends none: the embedded broker's default
// behind kafka-rest, and Kafka's max.poll.interval.ms.
const serverMaxPollInterval = 5 * time.Minute

// startKeepAlive starts the keep-alive goroutine if keep-alives are on.
// Called with c.mu held, c neither closed nor fenced (so that it is added
// to c.wg before Close waits on it).
func (c *consumer) startKeepAlive(maxPoll time.Duration) {
	every := c.t.cfg.keepAlive
	if every <= 0 {
		return
	}
	if maxPoll <= 0 {
		maxPoll = serverMaxPollInterval
	}
	c.wg.Go(func() { c.keepAlive(every, maxPoll) })
}

// keepAlive names the instance every interval in which nothing else did,
// until the consumer is closed or fenced. The owner's Polls cost it
// nothing: a consume notes its end (c.consumed), and the timer is set
// past it.
func (c *consumer) keepAlive(every, maxPoll time.Duration) {
	timer := time.NewTimer(every)
	defer timer.Stop()
	var (
		sent   int64      // monoNow when the last keep-alive was sent
		paused int64 = -1 // c.consumed when the server refused one: none until it changes
		// early brings each keep-alive forward by up to a tenth of the
		// interval, drawn anew after each: consumers whose last consumes
		// ended together (a process's, when its server stalled) do not
		// stay in step and ping together every interval.
		early int64
	)
	for {
		select {
		case <-timer.C:
		case <-c.liveCtx.Done():
			return
		}
		now := monoNow()
		consumed := c.consumed.Load()
		if due := max(consumed, sent) + int64(every) - early; now < due {
			timer.Reset(time.Duration(due - now))
			continue
		}
		// None now, checked again an interval later, when the owner is
		// stuck (no consume for its max poll interval: the server drops
		// such a member, and its instance is to expire), when the server
		// refused one since the last consume, or when a consume is in
		// flight (it keeps the instance in use).
		if now-consumed >= int64(maxPoll) || consumed == paused || c.consuming() {
			timer.Reset(every)
			continue
		}
		// The next one is due an interval after this one was sent, not
		// after it ended: a ping that retried for a while (up to
		// Backoff.MaxElapsed) does not push the next one back.
		sent = now
		early = rand.Int64N(int64(every)/10 + 1)
		err := c.ping()
		timer.Reset(max(time.Duration(sent+int64(every)-early-monoNow()), 0))
		var he *Error
		switch {
		case err == nil:
		case c.liveCtx.Err() != nil:
			return
		case errors.Is(err, transport.ErrFenced):
			// The server's word, as a Poll that met it takes it: the
			// consumer is fenced from now on. (The server remembers a
			// replaced incarnation only for its instance expiry after the
			// successor's last request: the next consume, later, would
			// make the instance again for a process that must stop, and
			// it would go on without keep-alives.)
			c.t.log.Info("upstash: consumer instance replaced by a newer one; keep-alives stop and the consumer is fenced",
				"group", c.key.group, "instance", c.key.instance)
			c.fence()
			return
		case errors.As(err, &he) && !he.Temporary():
			paused = consumed
			c.t.log.Warn("upstash: consumer instance keep-alive refused; none until the next poll",
				"group", c.key.group, "instance", c.key.instance, "error", err)
		default:
			c.t.log.Warn("upstash: consumer instance keep-alive failed",
				"group", c.key.group, "instance", c.key.instance, "error", err)
		}
	}
}

// ping names the instance to the server with a request that changes
// nothing: GET /committed/{group}/{instance} with no body, which lists the
// committed offsets of the partitions it owns (the answer is not read).
// On the project's REST server it fails with transport.ErrFenced once the
// instance was replaced, and with a 400 when it is gone; it never makes
// one. It carries the incarnation (deleteHdr), by which the server knows
// a replaced one.
func (c *consumer) ping() error {
	return c.t.call(c.liveCtx, request{method: http.MethodGet, path: c.committedPath, header: c.deleteHdr}, nil)
}

// consuming reports whether a consume request is in flight (the server
// keeps an instance in use from expiring).
func (c *consumer) consuming() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight != nil && !isDone(c.inflight.done)
}

// noteConsumed notes the end of a consume request: the server's member
// polled no later than now.
func (c *consumer) noteConsumed() { c.consumed.Store(monoNow()) }

// monoBase is the origin of the keep-alive's times (monoNow).
var monoBase = time.Now()

// monoNow is the time since monoBase in ns, on the monotonic clock: a step
// of the wall clock (an NTP correction, a VM resumed) moves neither the
// keep-alive's next one nor its max poll bound.
func monoNow() int64 { return int64(time.Since(monoBase)) }
