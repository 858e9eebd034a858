package rpctest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// serveStopTimeout bounds how long Serve's stop waits for Serve to return.
const serveStopTimeout = 15 * time.Second

// Serve runs s.Serve in a goroutine until stop is called or the test ends.
// stop cancels Serve's context, waits for Serve to return (at most 15 s,
// else it fails tb) and returns Serve's error; calling it again returns the
// same error. Call stop from the test's goroutine. If the test never calls
// stop, a cleanup does, and fails tb if Serve returned an error, but for
// one wrapping transport.ErrClosed: the test closed the transport first,
// as a deferred Close does (deferred calls run before cleanups), and its
// own teardown is no failure of the code under test. A test that calls
// stop owns the error, whatever it is.
func Serve(tb testing.TB, s *rpc.Server) (stop func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	var err error
	var byTest bool
	stopOnce := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(serveStopTimeout):
				tb.Errorf("rpctest.Serve: Serve did not return within %v of its cancel", serveStopTimeout)
			}
		})
		return err
	}
	tb.Cleanup(func() {
		if err := stopOnce(); err != nil && !byTest && !errors.Is(err, transport.ErrClosed) {
			tb.Errorf("rpctest.Serve: Serve returned %v", err)
		}
	})
	return func() error { byTest = true; return stopOnce() }
}
