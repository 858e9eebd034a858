package rpc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The break-it pass on lazyCtx's lock-free release (1d09d00): builds
// (through Done, Err, Value) racing one or two releases, with every kind of
// parent, closing context and deadline; and release's promise to the
// goroutine that called it: once release has returned, the context is over
// for everyone who looks at it.

type b15Key struct{}

// b15LazyCtx returns a lazyCtx of variant v (parent, closing, deadline
// kinds) and the error its Err must end with once released.
func b15LazyCtx(t *testing.T, v int) (*lazyCtx, func(error) bool) {
	parent := context.Background()
	switch v % 3 {
	case 1:
		p, cancel := context.WithCancel(context.WithValue(context.Background(), b15Key{}, "v"))
		t.Cleanup(cancel)
		parent = p
	case 2:
		p, cancel := context.WithTimeout(context.Background(), time.Hour)
		t.Cleanup(cancel)
		parent = p
	}
	lc := &lazyCtx{parent: parent}
	switch v / 3 % 3 {
	case 1:
		cl, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		lc.closing = cl
	case 2:
		cl, cancel := context.WithCancel(context.Background())
		cancel()
		lc.closing = cl
	}
	switch v / 9 % 3 {
	case 1:
		lc.deadline = time.Now().Add(time.Hour)
	case 2:
		lc.deadline = time.Now().Add(-time.Millisecond)
	}
	return lc, func(err error) bool {
		return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	}
}

// Many goroutines build the context every way while one or two release
// it: once all are done, Done is closed and Err is its error, the same
// for every later look, the parent's values still there.
func TestBreak15LazyCtxHammer(t *testing.T) {
	for i := range 1500 {
		v := i % 27
		lc, over := b15LazyCtx(t, v)
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				switch (i + g) % 4 {
				case 0:
					<-lc.Done()
				case 1:
					_ = lc.Err()
				case 2:
					_ = lc.Value(b15Key{})
				case 3:
					_ = lc.Err()
					_ = lc.Done()
				}
			})
			if g == 0 && i%2 == 0 {
				// Done blocks until release: start the releaser now.
				break
			}
		}
		wg.Go(lc.release)
		if i%5 == 0 {
			wg.Go(lc.release)
		}
		wg.Wait()
		select {
		case <-lc.Done():
		default:
			t.Fatalf("run %d (variant %d): built and released, Done open", i, v)
		}
		err := lc.Err()
		require.True(t, over(err), "run %d (variant %d): Err %v", i, v, err)
		require.Equal(t, err, lc.Err())
		require.Equal(t, lc.build().Err(), err)
		if v%3 == 1 {
			require.Equal(t, "v", lc.Value(b15Key{}))
		}
	}
}

// Once release has returned, whoever looks at the context (Err, or Done
// with a select that does not wait) sees it over, even while another
// goroutine is building it: before 1d09d00 release took the lock a build
// holds, and a build stored the context only once it had canceled it.
func TestBreak15LazyCtxOverOnceReleaseReturns(t *testing.T) {
	parent := context.WithValue(context.Background(), b15Key{}, "v")
	closing, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := 0
	for i := range 20000 {
		// A parent with a value and a closing context: the build's cancel
		// then stops an AfterFunc first, the widest window.
		lc := &lazyCtx{parent: parent, closing: closing, deadline: time.Now().Add(time.Hour)}
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; lc.Done() })
		var err error
		var open bool
		wg.Go(func() {
			<-start
			lc.release()
			err = lc.Err()
			if err == nil {
				return
			}
			select {
			case <-lc.Done():
			default:
				open = true
			}
		})
		close(start)
		wg.Wait()
		if lc.inner.Load() != nil {
			seen++
		}
		require.Error(t, err, "run %d: release returned, then Err is nil", i)
		require.False(t, open, "run %d: release returned, then Err is set but Done is open", i)
	}
	t.Logf("runs where the context was built: %d of 20000", seen)
}

// A pooled call's context: released unbuilt, then reset for the next use,
// is a fresh context (not over, its own deadline), many times over; built,
// it is over at release and end gives the pendingCall a new one.
func TestBreak15LazyCtxPooledReuse(t *testing.T) {
	closing, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A pendingCall of the pool's own making: end puts it back (the pool
	// is the calls', which need its channel and ackFn).
	pc := callPool.Get().(*pendingCall)
	for i := range 200 {
		parent, pcancel := context.WithCancel(context.Background())
		lc := pc.lc
		lc.reset(parent, closing)
		lc.deadline = time.Now().Add(time.Hour)
		require.NoError(t, lc.Err(), "run %d: a reset context is not over", i)
		require.False(t, lc.isReleased())
		built := i%3 == 0
		if built {
			_ = lc.Done()
		}
		if i%7 == 0 {
			pcancel()
			require.ErrorIs(t, lc.Err(), context.Canceled)
		}
		pc.answered = true
		pc.end() // back to the pool
		if built {
			require.NotSame(t, lc, pc.lc, "run %d: a built context is not reused", i)
			require.ErrorIs(t, lc.Err(), context.Canceled)
		} else {
			require.Same(t, lc, pc.lc, "run %d", i)
			require.Nil(t, lc.inner.Load())
		}
		pcancel()
		pc = callPool.Get().(*pendingCall) // most often the same one
	}
	pc.answered = true
	pc.end()
}
