package rpc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A call's context built with context.Background() as its parent (the
// transport waits on it: over REST, every call's produce does) derives
// from the client's own context instead of watching it with
// context.AfterFunc: the same context (it ends at its deadline, at the
// client's Close and at release; it holds no values), for fewer
// allocations.
func TestLazyCtxOnBackgroundEndsWithClosing(t *testing.T) {
	for _, parent := range []context.Context{context.Background(), context.TODO()} {
		closing, closeClient := context.WithCancel(context.Background())
		lc := &lazyCtx{parent: parent, closing: closing, deadline: time.Now().Add(time.Hour)}
		done := lc.Done()
		select {
		case <-done:
			t.Fatal("ended before anything ended it")
		default:
		}
		dl, ok := lc.Deadline()
		assert.True(t, ok)
		assert.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
		assert.Nil(t, lc.Value("key"))
		closeClient()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the client's Close did not end the call's context")
		}
		assert.ErrorIs(t, lc.Err(), context.Canceled)
		lc.release()
	}

	closing, closeClient := context.WithCancel(context.Background())
	defer closeClient()
	lc := &lazyCtx{parent: context.Background(), closing: closing, deadline: time.Now().Add(20 * time.Millisecond)}
	select {
	case <-lc.Done():
		assert.True(t, errors.Is(lc.Err(), context.DeadlineExceeded), "%v", lc.Err())
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline did not end the call's context")
	}
	lc.release()

	allocs := testing.AllocsPerRun(100, func() {
		lc := &lazyCtx{parent: context.Background(), closing: closing, deadline: time.Now().Add(time.Hour)}
		_ = lc.Done()
		lc.release()
	})
	t.Logf("allocations to build and release a call's context: %.0f", allocs)
	assert.LessOrEqual(t, allocs, 7.0, "10 with context.AfterFunc on the client's context")
}

// A context built after its release, or while another goroutine releases
// it, is over: whichever of build and release comes second cancels it
// (release takes no lock when the context was never built).
func TestLazyCtxBuildRacesRelease(t *testing.T) {
	lc := &lazyCtx{parent: context.Background()}
	lc.release()
	assert.ErrorIs(t, lc.Err(), context.Canceled, "released, then asked")
	for i := range 2000 {
		lc := &lazyCtx{parent: context.Background(), deadline: time.Now().Add(time.Hour)}
		released := make(chan struct{})
		go func() { defer close(released); lc.release() }()
		done := lc.Done()
		<-released
		select {
		case <-done:
		default:
			t.Fatalf("run %d: built and released, but its Done is open", i)
		}
		assert.ErrorIs(t, lc.Err(), context.Canceled)
	}
}
