package rpc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
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

// heldRig is a server whose handler of "jobs" runs request 0 until
// release is closed and answers the others at once, its client, and the
// log both write.
type heldRig struct {
	br      *memory.Broker
	s       *Server
	c       *Client
	logs    *testutil.SyncBuffer
	release chan struct{}
	stop    func() error // stops Serve and returns its error
}

func newHeldRig(t *testing.T, name string, opts ...ServerOption) *heldRig {
	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	rig := &heldRig{br: br, logs: &testutil.SyncBuffer{}, release: make(chan struct{})}
	log := WithLogger(slog.New(slog.NewTextHandler(rig.logs, nil)))
	rig.s, err = NewServer(br, append([]ServerOption{WithName(name), WithGroup(name), WithCommitInterval(0), log}, opts...)...)
	require.NoError(t, err)
	Handle(rig.s, "jobs", func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			<-rig.release
		}
		return n, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rig.s.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	rig.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(20 * time.Second):
				serveErr = errors.New("Serve did not return")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		select {
		case <-rig.release:
		default:
			close(rig.release)
		}
		assert.NoError(t, rig.stop())
	})
	rig.c, err = NewClient(br, WithName(name+"-client"), log)
	require.NoError(t, err)
	t.Cleanup(func() { rig.c.Close() })
	return rig
}

// send notifies "jobs" of requests from to to-1.
func (rig *heldRig) send(t *testing.T, from, to int) {
	for i := from; i < to; i++ {
		require.NoError(t, rig.c.Notify(context.Background(), "jobs", i))
	}
}

// A request that keeps running holds back the commit of the requests
// handled after it on its partition: Stats shows them as Uncommitted (what
// a crash now would deliver again) and the request running as InFlight,
// and Serve logs the held request once, with how many it holds back. When
// it ends, the commit passes them all and both counts fall to 0.
func TestHeldCommitsAreShownAndLoggedOnce(t *testing.T) {
	withHeldTimes(t, 20*time.Millisecond, 150*time.Millisecond)
	rig := newHeldRig(t, "held", WithConcurrency(3))
	s, logs := rig.s, rig.logs
	const n = 6
	rig.send(t, 0, n)
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

	close(rig.release)
	require.Eventually(t, func() bool {
		st := s.Stats()
		return st.Handled == n && st.Uncommitted == 0 && st.InFlight == 0
	}, 10*time.Second, 5*time.Millisecond, "stats after request 0 ended: %+v", s.Stats())
	off, err := rig.br.Committed("held", "jobs", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(n), off, "the commit passed every request once the held one ended")

	require.NoError(t, rig.stop())
	st := s.Stats()
	assert.Zero(t, st.InFlight, "not serving")
	assert.Zero(t, st.Uncommitted, "not serving")
}

// Once as many records wait behind a running request as the dedup window
// holds, a crash would run the oldest of them again: the request is logged
// once more, as a warning.
func TestHeldCommitsReachingTheWindowWarn(t *testing.T) {
	withHeldTimes(t, 20*time.Millisecond, 100*time.Millisecond)
	const window = 8
	rig := newHeldRig(t, "heldwarn", WithConcurrency(2), WithDedup(window, time.Hour))
	s, logs := rig.s, rig.logs
	const line = "holds back the commit of the requests handled after it"
	rig.send(t, 0, 4)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "held_back=3") }, 10*time.Second, 5*time.Millisecond,
		"no log of the held request: %s", logs.String())
	assert.Contains(t, logs.String(), "level=INFO")
	assert.NotContains(t, logs.String(), "level=WARN")

	// Request 0 runs for good: after holdGrace a long handler holds
	// nobody, so the other worker handles the rest, all held back.
	rig.send(t, 4, 12)
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
