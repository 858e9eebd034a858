package rpctest_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
)

// d15TB is a testing.TB whose Fatal ends only the goroutine that calls it,
// and says what it was, so that a test can watch Invoke fail tb (or not)
// from a goroutine of its own, with a bound on the wait.
type d15TB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *d15TB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *d15TB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *d15TB) fatalMsg() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

type d15Result struct {
	err   error
	fatal string
}

// d15Invoke runs Invoke[int] on a goroutine of its own and waits at most
// within for it to return or fail tb; ok is false if it did neither.
func d15Invoke(t *testing.T, within time.Duration, register func(*rpc.Server), route string, opts ...rpc.CallOption) (r d15Result, ok bool) {
	ftb := &d15TB{TB: t}
	done := make(chan d15Result, 1)
	go func() {
		var r d15Result
		defer func() { r.fatal = ftb.fatalMsg(); done <- r }()
		_, r.err = rpctest.Invoke[int](ftb, register, route, 1, opts...)
	}()
	select {
	case r = <-done:
		return r, true
	case <-time.After(within):
		return r, false
	}
}

// D15: a handler that ignores its context and outlives the call's deadline
// (blocked on something the test never gives it) made Invoke wait for
// Serve's drain (30 s by default) past its own 15 s bound and fail the test
// with "Serve did not return within 15s of its cancel", instead of
// returning what the caller gets: a timeout, CodeDeadlineExceeded, as its
// doc says. The handler is left to run on its own, as a server abandons it.
func TestD15InvokeReturnsWhileAHandlerIgnoresItsDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	register := func(s *rpc.Server) {
		rpc.Handle(s, "stuck", func(ctx context.Context, n int) (int, error) {
			<-release // deaf to ctx
			return n, nil
		})
	}
	start := time.Now()
	r, ok := d15Invoke(t, 1500*time.Millisecond, register, "stuck", rpc.WithTimeout(200*time.Millisecond))
	require.True(t, ok, "Invoke did not return within 1.5 s of a call with a 200 ms timeout")
	require.Empty(t, r.fatal, "Invoke failed the test")
	assert.Equal(t, rpc.CodeDeadlineExceeded, rpc.CodeOf(r.err), "%v", r.err)
	assert.ErrorIs(t, r.err, rpc.ErrTimeout)
	t.Logf("returned after %v", time.Since(start))
}

// D15: a handler that ends its goroutine without returning (t.FailNow, or
// a require, in the handler: runtime.Goexit) left the call to its timeout
// (30 s by default), then said "no reply before the deadline". It is
// answered at once now, as a panic is: CodeInternal, saying why.
func TestD15InvokeHandlerThatGoexits(t *testing.T) {
	register := func(s *rpc.Server) {
		rpc.Handle(s, "exits", func(ctx context.Context, n int) (int, error) {
			runtime.Goexit() // what t.FailNow does
			return n, nil
		})
	}
	r, ok := d15Invoke(t, 1500*time.Millisecond, register, "exits", rpc.WithTimeout(5*time.Second))
	require.True(t, ok, "Invoke still waiting 1.5 s after its handler exited")
	require.Empty(t, r.fatal)
	assert.Equal(t, rpc.CodeInternal, rpc.CodeOf(r.err), "%v", r.err)
	assert.ErrorContains(t, r.err, "Goexit")
}

// D15: a route whose topic the server does not read (a typo: register
// served "double", the test invoked "dubble") waited out the call's
// timeout, 30 s by default, and then said "no reply before the deadline",
// as if the handler were slow; Serve without routes already failed tb at
// once. It fails tb at once too now, naming the topics the server reads.
func TestD15InvokeRouteNotServedFailsAtOnce(t *testing.T) {
	register := func(s *rpc.Server) {
		rpc.Handle(s, "double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
	}
	r, ok := d15Invoke(t, 1500*time.Millisecond, register, "dubble", rpc.WithTimeout(5*time.Second))
	require.True(t, ok, "Invoke of a topic no route serves still waiting after 1.5 s")
	assert.Contains(t, r.fatal, `"dubble"`)
	assert.Contains(t, r.fatal, "double", "the topics served are named")
	assert.Nil(t, r.err)

	// A method on a served topic is the server's to answer (Handle on a
	// topic takes every method of it).
	r, ok = d15Invoke(t, 1500*time.Millisecond, register, "double/any", rpc.WithTimeout(5*time.Second))
	require.True(t, ok)
	assert.Empty(t, r.fatal)
	assert.NoError(t, r.err)
}
