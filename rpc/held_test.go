package rpc

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// withHeldTimes sets heldCheck and heldReport until the test ends.
func withHeldTimes(t *testing.T, check, report time.Duration) {
	oldCheck, oldReport := heldCheck, heldReport
	heldCheck, heldReport = check, report
	t.Cleanup(func() { heldCheck, heldReport = oldCheck, oldReport })
}

// A request that keeps running holds back the commit of the requests
// handled after it on its partition: Stats shows them as Uncommitted (what
// a crash now would deliver again) and the request running as InFlight,
// and Serve logs the held request once, with how many it holds back. When
// it ends, the commit passes them all and both counts fall to 0.
func TestHeldCommitsAreShownAndLoggedOnce(t *testing.T) {
	withHeldTimes(t, 20*time.Millisecond, 150*time.Millisecond)
	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })

	logs := &testutil.SyncBuffer{}
	s, err := NewServer(br, WithName("held"), WithGroup("held"), WithConcurrency(3),
		WithCommitInterval(0), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err)
	release := make(chan struct{})
	var started atomic.Int64
	Handle(s, "jobs", func(ctx context.Context, n int) (int, error) {
		started.Add(1)
		if n == 0 {
			<-release
		}
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return")
		}
	})

	c, err := NewClient(br, WithName("held-client"), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	const n = 6
	for i := range n {
		require.NoError(t, c.Notify(context.Background(), "jobs", i))
	}
	require.Eventually(t, func() bool {
		st := s.Stats()
		return st.Handled == n-1 && st.Uncommitted == n-1 && st.InFlight == 1
	}, 10*time.Second, 5*time.Millisecond, "stats while request 0 runs: %+v", s.Stats())

	const line = "holds back the commit of the requests handled after it"
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), line) }, 10*time.Second, 5*time.Millisecond,
		"no log of the held request")
	// Several more checks pass: it is logged once.
	time.Sleep(10 * heldCheck)
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, line), out)
	assert.Contains(t, out, "level=INFO", "a few held back, well within the dedup window: not a warning")
	assert.Contains(t, out, "topic=jobs partition=0 offset=0")
	assert.Contains(t, out, "held_back=5")

	close(release)
	require.Eventually(t, func() bool {
		st := s.Stats()
		return st.Handled == n && st.Uncommitted == 0 && st.InFlight == 0
	}, 10*time.Second, 5*time.Millisecond, "stats after request 0 ended: %+v", s.Stats())
	off, err := br.Committed("held", "jobs", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(n), off, "the commit passed every request once the held one ended")

	cancel()
	require.NoError(t, <-done)
	done <- nil // for the cleanup
	st := s.Stats()
	assert.Zero(t, st.InFlight, "not serving")
	assert.Zero(t, st.Uncommitted, "not serving")
}

// Once as many records wait behind a running request as the dedup window
// holds, a crash would run the oldest of them again: the request is logged
// once more, as a warning.
func TestHeldCommitsReachingTheWindowWarn(t *testing.T) {
	withHeldTimes(t, 20*time.Millisecond, 100*time.Millisecond)
	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })

	logs := &testutil.SyncBuffer{}
	const window = 8
	s, err := NewServer(br, WithName("heldwarn"), WithGroup("heldwarn"), WithConcurrency(2),
		WithCommitInterval(0), WithDedup(window, time.Hour), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err)
	release := make(chan struct{})
	Handle(s, "jobs", func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			<-release
		}
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		close(release)
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return")
		}
	})
	c, err := NewClient(br, WithName("heldwarn-client"), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	send := func(from, to int) {
		for i := from; i < to; i++ {
			require.NoError(t, c.Notify(context.Background(), "jobs", i))
		}
	}
	const line = "holds back the commit of the requests handled after it"
	send(0, 4)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "held_back=3") }, 10*time.Second, 5*time.Millisecond,
		"no log of the held request: %s", logs.String())
	assert.Contains(t, logs.String(), "level=INFO")
	assert.NotContains(t, logs.String(), "level=WARN")

	// Request 0 runs for good: after holdGrace a long handler holds
	// nobody, so the other worker handles the rest, all held back.
	send(4, 12)
	require.Eventually(t, func() bool { return s.Stats().Uncommitted == 11 }, 10*time.Second, 5*time.Millisecond,
		"stats: %+v", s.Stats())
	time.Sleep(5 * heldCheck)
	out := logs.String()
	assert.Equal(t, 2, strings.Count(out, line), out)
	assert.Equal(t, 1, strings.Count(out, "level=WARN"), out)
	warn := out[strings.Index(out, "level=WARN"):]
	assert.Contains(t, warn, "offset=0", out)
	assert.Regexp(t, `held_back=(8|9|10|11)\b`, warn, out)
}
