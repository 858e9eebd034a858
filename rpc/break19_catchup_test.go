package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// sentinelFaults is a transport that mistreats the produces of dedup
// sentinels (every other produce goes through): lost, their record is
// written and the response lost (a non-permanent error); refused, nothing
// is written and the error is non-permanent; stripped, the record is
// written and acknowledged without its sentinel header (a transport that
// loses records, or their headers).
type sentinelFaults struct {
	transport.Transport
	lost, refused, stripped bool
}

var errSentinelFault = errors.New("injected sentinel fault")

func (f *sentinelFaults) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if len(msgs) != 1 {
		return f.Transport.Produce(ctx, msgs...)
	}
	if _, ok := msgs[0].Header(headerDedupSentinel); !ok {
		return f.Transport.Produce(ctx, msgs...)
	}
	switch {
	case f.lost:
		if _, err := f.Transport.Produce(ctx, msgs...); err != nil {
			return nil, err
		}
		return nil, errSentinelFault
	case f.refused:
		return nil, errSentinelFault
	case f.stripped:
		m := msgs[0]
		m.Headers = []transport.Header{{Key: "x-stripped", Value: "1"}}
		return f.Transport.Produce(ctx, m)
	}
	return f.Transport.Produce(ctx, msgs...)
}

// busyGroup writes another instance's marker to the dedup topic every
// 20 ms until the test ends: a group busy while this server starts.
func busyGroup(t *testing.T, br *memory.Broker, topic string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := br.Produce(ctx, markerFor(topic, "other-instance", fmt.Sprintf("busy-%d", i), nil)); err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	})
}

// serveAsync starts s.Serve and returns its result channel; Serve is
// stopped when the test ends.
func serveAsync(t *testing.T, s *Server) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	done := make(chan struct{})
	go func() { defer close(done); served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its ctx was canceled")
		}
	})
	return served
}

func catchUpServer(t *testing.T, tr transport.Transport) *Server {
	t.Helper()
	s, err := NewServer(tr, WithName("catch"), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	return s
}

// A transport that loses the answers to produces (the catch-up's own
// comment: "A transport that loses records or responses may lose the
// sentinel") writes each sentinel, but the catch-up looked only for the
// ones it was told were written: it never recognized one, while its own
// sentinels, one or more a second, each reset the stall limit. Serve never
// started, and never failed either. A sentinel read back is the end of what
// was written before it, whether or not its produce was answered.
func TestBreak19CatchUpFindsASentinelWhoseAnswerWasLost(t *testing.T) {
	withCatchUpStall(t, 1500*time.Millisecond) // over the second between sentinels

	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	s := catchUpServer(t, &sentinelFaults{Transport: br, lost: true})
	served := serveAsync(t, s)

	c, err := NewClient(br)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	got, err := Call[string](ctx, c, "echo", "hi")
	select {
	case serr := <-served:
		t.Fatalf("Serve returned %v", serr)
	default:
	}
	require.NoError(t, err, "Serve never started: the catch-up did not recognize its own sentinel")
	require.Equal(t, "hi", got)
}

// Sentinel produces that fail without writing (a non-permanent error) while
// the group writes markers: the catch-up has no end to read up to, yet
// every marker of the busy group reset its stall limit, and Serve neither
// started nor failed. It must fail, saying why.
func TestBreak19CatchUpWithoutSentinelFailsInABusyGroup(t *testing.T) {
	withCatchUpStall(t, 500*time.Millisecond)

	err := serveInBusyGroup(t, func(br *memory.Broker) transport.Transport {
		return &sentinelFaults{Transport: br, refused: true}
	})
	require.ErrorIs(t, err, errSentinelFault, "the error says why: the sentinel could not be written")
	require.ErrorContains(t, err, "write sentinel")
}

// A transport that acknowledges the sentinels but loses them (here their
// header: the record is there, not recognizable) while the group writes
// markers: the catch-up read past each sentinel and on, every marker
// resetting its stall limit, forever. Records after the first sentinel
// acknowledged are no progress towards it: it must fail.
func TestBreak19CatchUpPastALostSentinelFailsInABusyGroup(t *testing.T) {
	withCatchUpStall(t, 500*time.Millisecond)

	err := serveInBusyGroup(t, func(br *memory.Broker) transport.Transport {
		return &sentinelFaults{Transport: br, stripped: true}
	})
	require.ErrorContains(t, err, "was not read back")
}

// A stop during a long catch-up (a backlog read slowly, well within its
// stall limit) returns nil, promptly.
func TestBreak19StopDuringALongCatchUpReturnsNil(t *testing.T) {
	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	tr := &slowPolls{Transport: br, max: 10, delay: 20 * time.Millisecond}
	s := catchUpServer(t, tr)
	batch := make([]transport.Message, 0, 5000)
	for i := range 5000 { // 500 polls of 20 ms: 10 s
		batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", fmt.Sprintf("req-%d", i), nil))
	}
	_, err = br.Produce(context.Background(), batch...)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	require.Eventually(t, func() bool { return s.dedup.has("req-100") }, 5*time.Second, time.Millisecond, "the catch-up is reading")
	cancel()
	select {
	case err := <-served:
		require.NoError(t, err, "a stop while starting is not a failure")
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return promptly after its ctx was canceled")
	}
	require.False(t, s.dedup.has("req-4999"), "stopped before the end of the backlog")
}

// serveInBusyGroup serves a server on the transport faulty makes of a
// broker of its own, while the group writes markers to its dedup topic,
// and returns Serve's error: Serve must fail within 6 s.
func serveInBusyGroup(t *testing.T, faulty func(*memory.Broker) transport.Transport) error {
	t.Helper()
	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	s := catchUpServer(t, faulty(br))
	busyGroup(t, br, s.cfg.dedupTopic)
	served := serveAsync(t, s)
	select {
	case err := <-served:
		require.Error(t, err)
		t.Log(err)
		return err
	case <-time.After(6 * time.Second):
		t.Fatal("Serve neither started nor failed: the busy group's markers kept the catch-up alive")
		return nil
	}
}
