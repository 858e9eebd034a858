package testutil

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// CancelMode says when CancelAtOp cancels, relative to the operation it
// picked.
type CancelMode int

const (
	CancelBefore CancelMode = iota // the operation starts canceled
	CancelAfter                    // the operation completes, then the cancel
	CancelWhile                    // the cancel comes while the operation runs
)

// CancelAtOp is a transport that cancels a ctx at the k-th operation of an
// rpc Server's start (counted from 0: the dedup reader's Subscribe, its
// sentinel Produces and catch-up Polls, then the group's Subscribe), before it,
// after it or while it runs (see Arm). A k not reached when the group's
// Subscribe returns is a cancel just after the start. Its fields are set
// between starts, not while one runs.
type CancelAtOp struct {
	transport.Transport
	// WhileDelay, when positive, makes CancelWhile wait a random time
	// below it before canceling (or until the operation ends): a request
	// to a server then gets there, and is cut at a random point of it.
	WhileDelay time.Duration
	// Joins counts the group Subscribes begun.
	Joins atomic.Int64

	k      int64 // -1: no cancel
	mode   CancelMode
	cancel context.CancelFunc
	n      atomic.Int64
}

// NewCancelAtOp returns t wrapped, disarmed.
func NewCancelAtOp(t transport.Transport) *CancelAtOp {
	return &CancelAtOp{Transport: t, k: -1}
}

// Arm makes the next start call cancel at its k-th operation, in mode.
func (c *CancelAtOp) Arm(k int64, mode CancelMode, cancel context.CancelFunc) {
	c.k, c.mode, c.cancel = k, mode, cancel
	c.n.Store(0)
}

// Disarm stops canceling.
func (c *CancelAtOp) Disarm() { c.k = -1 }

func (c *CancelAtOp) op(f func()) {
	if c.n.Add(1)-1 != c.k {
		f()
		return
	}
	switch c.mode {
	case CancelBefore:
		c.cancel()
		f()
	case CancelAfter:
		f()
		c.cancel()
	default:
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		if c.WhileDelay > 0 {
			if d := rand.Int64N(int64(c.WhileDelay)); d > 0 {
				timer := time.NewTimer(time.Duration(d))
				select {
				case <-done:
				case <-timer.C:
				}
				timer.Stop()
			}
		}
		c.cancel()
		<-done
	}
}

func (c *CancelAtOp) Produce(ctx context.Context, msgs ...transport.Message) (out []transport.Message, err error) {
	c.op(func() { out, err = c.Transport.Produce(ctx, msgs...) })
	return out, err
}

func (c *CancelAtOp) Subscribe(ctx context.Context, sub transport.Subscription) (cons transport.Consumer, err error) {
	reader := strings.Contains(sub.Group, ".reader.")
	if !reader {
		c.Joins.Add(1)
	}
	c.op(func() { cons, err = c.Transport.Subscribe(ctx, sub) })
	if !reader {
		// The start is over: a k not reached yet is a cancel just after it.
		if c.n.Load() <= c.k {
			c.n.Store(c.k + 1)
			c.cancel()
		}
		return cons, err
	}
	if err == nil {
		cons = &cancelAtOpConsumer{Consumer: cons, c: c}
	}
	return cons, err
}

type cancelAtOpConsumer struct {
	transport.Consumer
	c *CancelAtOp
}

// Poll counts the catch-up's polls, each bounded by a deadline. The
// follow loop's, which have none, are not operations of the start: the
// loop begins before the group's Subscribe, races with it for a count, and
// its poll of an idle topic waits for a record, so that a cancel after it
// would never come.
func (r *cancelAtOpConsumer) Poll(ctx context.Context) (msgs []transport.Message, err error) {
	if _, ok := ctx.Deadline(); !ok {
		return r.Consumer.Poll(ctx)
	}
	r.c.op(func() { msgs, err = r.Consumer.Poll(ctx) })
	return msgs, err
}
