package rpc_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// serveAsync runs s.Serve until the test ends and returns a channel that
// gets its result (once) when it returns.
func serveAsync(t *testing.T, s *rpc.Server) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		result <- s.Serve(ctx)
		close(returned)
	}()
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

// A server takes its instance id from KAFKA_INSTANCE; a second live server
// with the same id fences the first, whose Serve stops with an error
// wrapping transport.ErrFenced; the calls go on to the second, and the
// fenced one handles nothing more.
func TestInstanceFromEnvFencesTwin(t *testing.T) {
	t.Setenv(rpc.EnvInstance, "worker-7")
	b := newBroker(t, memory.WithTopic("jobs", 2))
	var runsA, runsB atomic.Int64
	newServer := func(runs *atomic.Int64) *rpc.Server {
		s, err := rpc.NewServer(b, rpc.WithName("jobs-srv"), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { runs.Add(1); return n * 2, nil })
		return s
	}
	a := newServer(&runsA)
	doneA := serveAsync(t, a)
	c := newClient(t, b)
	call := func(n int) {
		t.Helper()
		got, err := rpc.Call[int](t.Context(), c, "jobs", n)
		require.NoError(t, err)
		require.Equal(t, n*2, got)
	}
	for n := range 10 {
		call(n)
	}
	require.Equal(t, int64(10), runsA.Load())

	second := newServer(&runsB)
	serveAsync(t, second)
	select {
	case err := <-doneA:
		require.ErrorIs(t, err, transport.ErrFenced)
		assert.Contains(t, err.Error(), "worker-7")
	case <-time.After(10 * time.Second):
		t.Fatal("the first server was not fenced by its twin")
	}
	for n := 10; n < 20; n++ {
		call(n)
	}
	assert.Equal(t, int64(10), runsA.Load(), "the fenced server handled requests")
	assert.Equal(t, int64(10), runsB.Load(), "each request is handled once")
}

// WithInstance wins over KAFKA_INSTANCE, WithInstance("") included; a bad
// KAFKA_INSTANCE is refused by NewServer, naming the variable.
func TestInstanceOptionAndEnv(t *testing.T) {
	t.Setenv(rpc.EnvInstance, "bad id")
	b := newBroker(t, memory.WithTopic("jobs", 2))
	_, err := rpc.NewServer(b)
	require.ErrorContains(t, err, rpc.EnvInstance)
	for _, id := range []string{"", "w-1"} {
		_, err := rpc.NewServer(b, rpc.WithInstance(id))
		require.NoError(t, err, id)
	}

	// Two servers with WithInstance("") are two members, not twins.
	t.Setenv(rpc.EnvInstance, "same")
	var runs atomic.Int64
	var dones []<-chan error
	for range 2 {
		s, err := rpc.NewServer(b, rpc.WithName("jobs-srv"), rpc.WithInstance(""), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { runs.Add(1); return n, nil })
		dones = append(dones, serveAsync(t, s))
	}
	c := newClient(t, b)
	for n := range 10 {
		_, err := rpc.Call[int](t.Context(), c, "jobs", n)
		require.NoError(t, err)
	}
	for _, d := range dones {
		select {
		case err := <-d:
			t.Fatalf("a server stopped: %v", err)
		default:
		}
	}
}

// A client restarted with the same WithNoticeInstance takes the notice
// partitions at once: its predecessor's reader is fenced and handles no
// more, and the notices sent from then on reach the new one.
func TestNoticeInstanceTakesOver(t *testing.T) {
	b := newBroker(t, memory.WithTopic("jobs", 2), memory.WithTopic("web.notices", 2))
	s, err := rpc.NewServer(b, rpc.WithName("jobs-srv"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { return n, nil })
	serveT(t, s)

	newWeb := func(got chan<- string) *rpc.Client {
		c, err := rpc.NewClient(b, rpc.WithName("web"), rpc.WithNoticeInstance("web-1"), quiet)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.OnNotice(func(_ context.Context, r *rpc.Reply) error {
			if r.Kind == rpc.KindReply {
				got <- r.CorrelationID
			}
			return nil
		}))
		return c
	}
	gotA, gotB := make(chan string, 100), make(chan string, 100)
	a := newWeb(gotA)
	sent := map[string]bool{}
	send := func(c *rpc.Client, got <-chan string) {
		t.Helper()
		id, err := c.Send(t.Context(), "jobs", 1)
		require.NoError(t, err)
		deadline := time.After(10 * time.Second)
		for {
			select {
			case n := <-got:
				if n == id {
					sent[id] = true
					return
				}
				// At-least-once: a notice handled by the replaced reader
				// but not yet committed (commits are batched) comes again.
				require.True(t, sent[n], "a notice nobody sent: %s", n)
			case <-deadline:
				t.Fatal("notice not handled")
			}
		}
	}
	send(a, gotA)
	web2 := newWeb(gotB) // the restart: same notice instance
	for range 5 {
		send(web2, gotB)
	}
	assert.Empty(t, gotA, "the replaced notice reader handled notices")
}
