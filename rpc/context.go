package rpc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyCtx is a context with a deadline whose timer and cancellation
// machinery are only built when someone waits on it (Done, a derived
// context, a Value lookup other than the handler's). A handler that never
// blocks on its context, the common case for quick handlers, then costs one
// allocation instead of the five of context.WithDeadline, and no timer.
//
// Before it is built, Err and Deadline are computed from the parent and the
// deadline; afterwards every method defers to the built context, so the
// context contract (Err non-nil once Done is closed, context.Cause) holds.
type lazyCtx struct {
	parent   context.Context
	deadline time.Time // zero: none of its own
	// closing, when not nil, also ends the context (a Client's Close): a
	// second parent, watched only once the context is built. It must hold
	// no values (see build).
	closing context.Context

	mu     sync.Mutex
	inner  atomic.Pointer[context.Context]
	cancel context.CancelFunc // set before inner, under mu
	// released says the context's work is over: built after release means
	// canceled. Set before release looks at inner, and read by build
	// after it stores inner: one of the two sees the other's write and
	// cancels (both may), with no lock on release's path when the context
	// was never built, the common case.
	released atomic.Bool
}

// reset readies c, unbuilt (see pendingCall.end), for a new use with
// parent and closing and no deadline.
func (c *lazyCtx) reset(parent, closing context.Context) {
	c.parent, c.closing, c.deadline = parent, closing, time.Time{}
	c.mu.Lock()
	c.cancel = nil
	c.mu.Unlock()
	c.released.Store(false)
}

// built returns the context if it was built, nil if not. Once released,
// it cancels the context itself (as release does: cancel is set once inner
// is, and canceling again does nothing): release returns without waiting
// for a build in progress (it saw no context yet), whose context is then
// stored before the build cancels it (see released); whoever looks after
// release returned must see it over, as release's caller does.
func (c *lazyCtx) built() context.Context {
	in := c.inner.Load()
	if in == nil {
		return nil
	}
	if c.released.Load() {
		c.cancelBuilt()
	}
	return *in
}

func (c *lazyCtx) build() context.Context {
	if in := c.built(); in != nil {
		return in
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.inner.Load(); in != nil {
		return *in
	}
	parent, closing := c.parent, c.closing
	if closing != nil && (parent == context.Background() || parent == context.TODO()) {
		// A parent that never ends and holds no values: the context
		// derived from closing (a Client's, which holds none either) is
		// the same context, without context.AfterFunc's allocations.
		parent, closing = closing, nil
	}
	var in context.Context
	if c.deadline.IsZero() {
		in, c.cancel = context.WithCancel(parent)
	} else {
		in, c.cancel = context.WithDeadline(parent, c.deadline)
	}
	if closing != nil {
		stop := context.AfterFunc(closing, c.cancel)
		cancel := c.cancel
		c.cancel = func() { stop(); cancel() }
	}
	c.inner.Store(&in)
	if c.released.Load() {
		// First touched after its work ended (by a goroutine the handler
		// left behind): it is over, as a built context would be by now.
		c.cancel()
	}
	return in
}

func (c *lazyCtx) Deadline() (time.Time, bool) {
	pd, ok := c.parent.Deadline()
	switch {
	case c.deadline.IsZero():
		return pd, ok
	case ok && pd.Before(c.deadline):
		return pd, true
	}
	return c.deadline, true
}

func (c *lazyCtx) Done() <-chan struct{} { return c.build().Done() }

func (c *lazyCtx) Err() error {
	if in := c.built(); in != nil {
		return in.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if c.closing != nil && c.closing.Err() != nil {
		return c.build().Err()
	}
	// time.Until reads the monotonic clock alone (the deadline has a
	// monotonic reading), where time.Now reads the wall clock too: Err is
	// called by every produce of the embedded broker.
	if !c.deadline.IsZero() && time.Until(c.deadline) <= 0 || c.isReleased() {
		// Expired or released but not yet built: build so that Done and
		// Err agree.
		return c.build().Err()
	}
	return nil
}

func (c *lazyCtx) Value(key any) any { return c.build().Value(key) }

// release frees the timer, if one was built. Call when the context's work
// is over.
func (c *lazyCtx) release() {
	c.released.Store(true)
	if c.inner.Load() == nil {
		return // not built: a build from now on cancels (see released)
	}
	c.cancelBuilt()
}

// cancelBuilt cancels the built context (cancel is set before inner is
// stored, under mu). Canceling again does nothing.
func (c *lazyCtx) cancelBuilt() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil { // nil only for a context reset while built, which pendingCall.end prevents
		cancel()
	}
}

func (c *lazyCtx) isReleased() bool { return c.released.Load() }
