package upstash

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A process that dies without closing its consumer and comes back with the
// same instance id (a new Transport, as a new process makes) takes its
// partitions back at once, and gets again exactly the records the dead one
// was delivered and did not commit: at-least-once, from the group's
// committed offsets, not from the dead instance's position in the server.
// The dead process's consumer, if it were still alive, is fenced.
func TestRestartWithSameInstanceResumesFromCommitted(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("jobs", 4)}})
	ctx := t.Context()
	sub := transport.Subscription{Group: "workers", Instance: "w1", Topics: []string{"jobs"}, Start: transport.StartEarliest}

	first := newTestTransport(t, srv.URL)
	other := newTestTransport(t, srv.URL)
	dead, err := first.Subscribe(ctx, sub)
	require.NoError(t, err)
	peer, err := other.Subscribe(ctx, transport.Subscription{Group: "workers", Instance: "w2", Topics: []string{"jobs"}, Start: transport.StartEarliest})
	require.NoError(t, err)

	var in []transport.Message
	for i := range 40 {
		in = append(in, transport.Message{Topic: "jobs", Key: fmt.Sprint("k", i), Value: []byte(fmt.Sprint(i))})
	}
	_, err = first.Produce(ctx, in...)
	require.NoError(t, err)

	// w1 and w2 share the partitions; w1 reads all of its own and commits
	// about half of each partition, then "dies" (nothing more is sent on
	// its behalf: no close, no delete).
	got := pollUntilIdle(t, dead)
	require.NotEmpty(t, got)
	owned := partitionsOf(got)
	var uncommitted []string
	var commit []transport.Message
	for _, p := range owned {
		recs := inPartition(got, p)
		half := len(recs) / 2
		commit = append(commit, recs[:half]...)
		for _, m := range recs[half:] {
			uncommitted = append(uncommitted, string(m.Value))
		}
	}
	require.NotEmpty(t, uncommitted)
	require.NoError(t, dead.Commit(ctx, commit...))
	peerGot := pollUntilIdle(t, peer)
	require.NoError(t, peer.Commit(ctx, peerGot...))

	// The restart: a new Transport with the same instance.
	start := time.Now()
	second := newTestTransport(t, srv.URL)
	again, err := second.Subscribe(ctx, sub)
	require.NoError(t, err)
	var redelivered []transport.Message
	for len(redelivered) < len(uncommitted) && time.Since(start) < 5*time.Second {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		msgs, err := again.Poll(pctx)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		redelivered = append(redelivered, msgs...)
	}
	took := time.Since(start)
	t.Logf("restart with the same instance: %d uncommitted records back in %v", len(redelivered), took)
	assert.ElementsMatch(t, uncommitted, valuesOf(redelivered), "not exactly the uncommitted records")
	assert.Equal(t, owned, partitionsOf(redelivered), "the partitions did not come back to the same instance")
	assert.Less(t, took, 2*time.Second)

	// The earlier incarnation is fenced: it neither reads nor commits. A
	// consume it sent before the restart may be answered first: the last
	// Poll of pollUntilIdle can time out with its request still running
	// (on a loaded machine), and the next Poll takes that answer (see
	// consumer.inflight). The Poll after it is fenced.
	_, err = dead.Poll(ctx)
	if err == nil {
		_, err = dead.Poll(ctx)
	}
	require.ErrorIs(t, err, transport.ErrFenced)
	require.ErrorContains(t, err, "replaced by a newer incarnation")
	require.ErrorIs(t, dead.Commit(ctx, redelivered...), transport.ErrFenced)
	require.NoError(t, again.Commit(ctx, redelivered...))
	require.NoError(t, dead.Close())
	// Closing the fenced consumer deleted nothing of its successor's.
	assert.Contains(t, srv.instances(t), "workers/w1")
	require.NoError(t, again.Close())
	require.NoError(t, peer.Close())
}

// pollUntilIdle polls c until a poll returns nothing.
func pollUntilIdle(tb testing.TB, c transport.Consumer) []transport.Message {
	tb.Helper()
	var got []transport.Message
	for {
		ctx, cancel := context.WithTimeout(tb.Context(), 300*time.Millisecond)
		msgs, err := c.Poll(ctx)
		cancel()
		if err != nil {
			require.ErrorIs(tb, err, context.DeadlineExceeded)
		}
		if len(msgs) == 0 {
			return got
		}
		got = append(got, msgs...)
	}
}

func partitionsOf(msgs []transport.Message) []int32 {
	var ps []int32
	for _, m := range msgs {
		if !slices.Contains(ps, m.Partition) {
			ps = append(ps, m.Partition)
		}
	}
	slices.Sort(ps)
	return ps
}

func inPartition(msgs []transport.Message, p int32) []transport.Message {
	var out []transport.Message
	for _, m := range msgs {
		if m.Partition == p {
			out = append(out, m)
		}
	}
	return out
}

func valuesOf(msgs []transport.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}

// Two live rpc servers with the same instance id over the REST API: the
// later one fences the earlier, whose Serve stops with an error wrapping
// transport.ErrFenced and handles nothing more; every call is answered and
// each request handled once.
func TestRPCTwinInstancesFenceOverREST(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("twins", 3)}})
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))
	var runsA, runsB atomic.Int64
	serve := func(runs *atomic.Int64) <-chan error {
		s, err := rpc.NewServer(newTestTransport(t, srv.URL), rpc.WithName("twin"), rpc.WithInstance("worker-1"), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "twins", func(_ context.Context, n int) (int, error) { runs.Add(1); return n + 1, nil })
		ctx, cancel := context.WithCancel(context.Background())
		result, returned := make(chan error, 1), make(chan struct{})
		go func() { result <- s.Serve(ctx); close(returned) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-returned:
			case <-time.After(20 * time.Second):
				t.Error("Serve did not return")
			}
		})
		return result
	}
	doneA := serve(&runsA)
	c, err := rpc.NewClient(newTestTransport(t, srv.URL), rpc.WithName("caller"), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	call := func(n int) {
		t.Helper()
		got, err := rpc.Call[int](t.Context(), c, "twins", n)
		require.NoError(t, err)
		require.Equal(t, n+1, got)
	}
	for n := range 10 {
		call(n)
	}
	serve(&runsB)
	select {
	case err := <-doneA:
		require.ErrorIs(t, err, transport.ErrFenced)
		t.Logf("the fenced twin's Serve returned: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the first server was not fenced by its twin")
	}
	for n := 10; n < 20; n++ {
		call(n)
	}
	assert.Equal(t, int64(10), runsA.Load(), "the fenced server handled requests")
	assert.Equal(t, int64(10), runsB.Load(), "each request is handled once")
	assert.Equal(t, []string{"twin/worker-1"}, slices.DeleteFunc(srv.instances(t), func(s string) bool { return !strings.HasPrefix(s, "twin/") }))
}
