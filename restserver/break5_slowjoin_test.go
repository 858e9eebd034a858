package restserver_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// gatedJoin holds the first Subscribe of a backend until release is closed:
// a join that takes a while, as a Kafka group join (a rebalance) does.
type gatedJoin struct {
	restserver.Backend
	first   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedJoin) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	if g.first.CompareAndSwap(false, true) {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Backend.Subscribe(ctx, s)
}

// BUG (fixed: the replacement waits for the old instance's consume, whose
// join is abandoned): an old incarnation whose join is still in progress when a new
// incarnation replaces the instance finishes joining AFTER the new
// incarnation's member joined, with the same member id: the backend takes
// the later join as the newer member and fences the new incarnation's
// member. The old instance then sees it was closed and closes its member,
// but the new incarnation's consume has already failed with the fenced
// 404 (and its instance is forgotten): the process that was meant to take
// over is told it was replaced and stops (the kafkarpc transport reports
// ErrFenced, rpc's Serve returns). Both processes are gone. On a Kafka
// backend a join takes seconds (a rebalance), so a process restarted while
// its predecessor's first consume was joining (a crash loop; a rolling
// restart of a worker that had just started) hits it.
func TestBreak5SlowOldJoinFencesNewIncarnation(t *testing.T) {
	t.Parallel()
	g := &gatedJoin{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		wrap:   func(b restserver.Backend) restserver.Backend { g.Backend = b; return g },
	})
	e.ok("POST", "/produce/t", `[{"value":"a"}]`)

	var wg sync.WaitGroup
	wg.Add(1)
	var old reply
	go func() {
		defer wg.Done()
		old, _ = e.rawReq("POST", "/consume/g/w", `{"topic":"t","timeout":100}`, inc("one")...)
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the old incarnation's join never started")
	}

	// The new incarnation replaces the joining instance and consumes.
	type res struct {
		r   reply
		err error
	}
	newDone := make(chan res, 1)
	go func() {
		r, err := e.rawReq("POST", "/consume/g/w", `{"topic":"t","timeout":3000}`, inc("two")...)
		newDone <- res{r, err}
	}()
	// Let the new member join, then let the old join go on.
	require.Eventually(t, func() bool { return e.srv.Stats().Instances == 1 && len(e.consumersOf(t, "g")) == 1 }, 5*time.Second, time.Millisecond)
	close(g.release)
	wg.Wait()
	// The old incarnation is told it was replaced (not "server is shutting
	// down", a 503 that a client retries).
	msg := requireErrorBody(t, old, http.StatusNotFound)
	assert.Contains(t, msg, "replaced by a newer incarnation")

	got := <-newDone
	require.NoError(t, got.err)
	assert.Equal(t, http.StatusOK, got.r.status, "the new incarnation was fenced by its predecessor's late join: %s", got.r.body)
	// And whatever it got, it can go on consuming.
	r := e.req("POST", "/consume/g/w", `{"topic":"t","timeout":0}`, inc("two")...)
	assert.Equal(t, http.StatusOK, r.status, r.body)
}

// consumersOf lists the instance names of group with an assignment.
func (e *env) consumersOf(t *testing.T, group string) []string {
	var out []string
	for _, g := range decode[[]groupAssignments](t, e.ok("GET", "/consumers", "")) {
		if g.Name != group {
			continue
		}
		for _, in := range g.Instances {
			if len(in.Topics) > 0 {
				out = append(out, in.Name)
			}
		}
	}
	return out
}
