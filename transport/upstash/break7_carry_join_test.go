package upstash

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// slowJoin holds a backend's Subscribe (a group join) once armed, until
// release is closed or the request ends: a join that takes a while, as a
// Kafka group join does during a rebalance (seconds; after a kafka-rest
// restart, up to the session timeout of the members it left behind).
type slowJoin struct {
	restserver.Backend
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *slowJoin) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Backend.Subscribe(ctx, s)
}

// BUG (fixed: kafka-rest sends the consume's headers, Kafka-Produced among
// them, as soon as the carried records are written, before it waits for
// anything: the join, the instance, the poll slot): the carried produce
// was answered only once the instance had joined the group, just before
// the long poll. A consume that has to join again (its instance expired or
// was deleted, kafka-rest restarted, a rebalance on Kafka) holds the
// produce's answer for as long as the join takes; when that is longer
// than the client's request bound (the server-side wait plus
// WithRequestTimeout) the client gives up with no word on its records,
// concludes nothing was written and produces them again: every reply the
// consume carried is written twice. Produced alone (the path without the
// extension), the reply was answered at once and written once.
func TestBreak7CarrySlowJoinWritesRepliesTwice(t *testing.T) {
	g := &slowJoin{entered: make(chan struct{}), release: make(chan struct{})}
	s := resttest.Start(t, resttest.Config{
		Broker:  []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		Backend: func(b restserver.Backend) restserver.Backend { g.Backend = b; return g },
	})
	defer close(g.release)
	tr := newTestTransport(t, s.URL, WithRequestTimeout(300*time.Millisecond), WithPollWindow(50*time.Millisecond))
	cons, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"in"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cons.Close() })
	c := cons.(*consumer)
	// One plain poll: the server has said it takes records with a consume.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, err = cons.Poll(ctx)
	cancel()
	require.NoError(t, err)
	require.True(t, c.carries.Load())

	// The instance goes away on the server (deleted here; expired, or
	// lost in a restart, alike): the next consume makes it again and
	// joins, slowly.
	req, err := http.NewRequest(http.MethodPost, s.URL+c.deletePath, nil)
	require.NoError(t, err)
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := s.HTTP.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	g.armed.Store(true)

	a := newAck()
	pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer pcancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.PollCarrying(pctx, []transport.Message{{Topic: "out", Value: []byte("reply")}}, a.fn)
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the consume never joined")
	}
	a.wait(t)
	require.NoError(t, a.err, "the reply was written")
	<-done

	// Read "out" straight from the broker.
	rd, err := s.Broker.Subscribe(t.Context(), transport.Subscription{Group: "reader", Topics: []string{"out"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer rd.Close()
	var got []string
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		rctx, rcancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		msgs, _ := rd.Poll(rctx)
		rcancel()
		for _, m := range msgs {
			got = append(got, string(m.Value))
		}
	}
	assert.Equal(t, []string{"reply"}, got, "the carried reply is written once")
}

// BUG (fixed: a 2xx answer whose headers say nothing of the commit ends
// the ride at once): a Commit riding on a consume whose answer did not
// commit (kafka-rest answers a carried produce before a join without
// committing) waited for the consume's whole long poll before it went
// alone: the rpc committer stalled for the poll window.
func TestBreak7CarryCommitNotDoneGoesAloneAtOnce(t *testing.T) {
	g := &slowJoin{entered: make(chan struct{}), release: make(chan struct{})}
	s := resttest.Start(t, resttest.Config{
		Broker:  []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		Backend: func(b restserver.Backend) restserver.Backend { g.Backend = b; return g },
	})
	released := false
	release := func() {
		if !released {
			released = true
			close(g.release)
		}
	}
	defer release()
	tr := newTestTransport(t, s.URL, WithPollWindow(5*time.Second))
	cons, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Topics: []string{"in"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cons.Close() })
	c := cons.(*consumer)
	require.True(t, c.carries.Load(), "Subscribe's consume said the server carries")

	// The instance must join again (deleted here), slowly.
	req, err := http.NewRequest(http.MethodPost, s.URL+c.deletePath, nil)
	require.NoError(t, err)
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := s.HTTP.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	g.armed.Store(true)

	// A Commit waits for the next consume: the carrying one takes it.
	ride := &commitRide{offsets: []byte(`[{"topic":"in","partition":0,"offset":1}]`), done: make(chan struct{})}
	c.mu.Lock()
	c.ride = ride
	c.mu.Unlock()
	a := newAck()
	pctx, pcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer pcancel()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		_, _ = c.PollCarrying(pctx, []transport.Message{{Topic: "out", Value: []byte("reply")}}, a.fn)
	}()
	defer func() { pcancel(); _ = cons.Close(); <-polled }()
	a.wait(t)
	require.NoError(t, a.err)
	<-g.entered
	release() // joined; the long poll (5 s, nothing to read) begins
	start := time.Now()
	select {
	case <-ride.done:
		t.Logf("the Commit went alone %v after the join was let go", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("the commit the consume did not do waits for its long poll")
	}
	assert.True(t, ride.alone, "the consume did not commit: the Commit goes alone")
}
