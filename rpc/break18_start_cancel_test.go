package rpc_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// phaseCount counts how far each start got: dedup reader subscribes,
// group joins begun and group joins that succeeded.
type phaseCount struct {
	transport.Transport
	reader, join, joined atomic.Int64
}

func (p *phaseCount) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	if strings.Contains(sub.Group, ".reader.") {
		p.reader.Add(1)
		return p.Transport.Subscribe(ctx, sub)
	}
	p.join.Add(1)
	c, err := p.Transport.Subscribe(ctx, sub)
	if err == nil {
		p.joined.Add(1)
	}
	return c, err
}

// Serve's ctx canceled at random moments of its start (before, during and
// after the dedup replay and the group join), many times on one Server
// with a fixed instance id: every Serve returns nil at once (never an
// error, never a hang), and the same Server then serves a call, so no
// member or reader left behind fences or delays the next join.
func TestBreak18ServeCanceledAtRandomMomentsOfStart(t *testing.T) {
	br := newBroker(t)
	pc := &phaseCount{Transport: br}
	s, err := rpc.NewServer(pc, rpc.WithName("svc18"), rpc.WithInstance("svc18-fixed"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })

	const iterations = 300
	for i := range iterations {
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- s.Serve(ctx) }()
		window := []time.Duration{300 * time.Microsecond, time.Millisecond, 4 * time.Millisecond}[i%3]
		if d := rand.Int64N(int64(window)); d > int64(20*time.Microsecond) {
			timer := time.NewTimer(time.Duration(d))
			<-timer.C
		}
		cancel()
		select {
		case err := <-served:
			require.NoError(t, err, "iteration %d", i)
		case <-time.After(15 * time.Second):
			t.Fatalf("iteration %d: Serve did not return after its ctx was canceled", i)
		}
	}

	t.Logf("of %d starts: %d reached the replay, %d the join, %d joined", iterations, pc.reader.Load(), pc.join.Load(), pc.joined.Load())

	// The same server joins and serves at once afterwards.
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() {
		cancel()
		assert.NoError(t, <-served)
	}()
	c := newClient(t, br)
	callCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	started := time.Now()
	got, err := rpc.Call[string](callCtx, c, "echo", "after")
	require.NoError(t, err)
	assert.Equal(t, "after", got)
	t.Logf("call after %d canceled starts answered in %v", iterations, time.Since(started))
}

// cancelAtOp cancels a ctx at the k-th operation of a Serve's start (the
// dedup reader's Subscribe, its sentinel Produces and Polls, the group's
// Subscribe), before the operation, after it, or while it runs.
type cancelAtOp struct {
	transport.Transport
	k      int64
	mode   int // 0 before, 1 after, 2 while
	cancel context.CancelFunc
	n      atomic.Int64
}

func (c *cancelAtOp) op(f func()) {
	if c.n.Add(1)-1 != c.k {
		f()
		return
	}
	switch c.mode {
	case 0:
		c.cancel()
		f()
	case 1:
		f()
		c.cancel()
	default:
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		c.cancel()
		<-done
	}
}

func (c *cancelAtOp) Produce(ctx context.Context, msgs ...transport.Message) (out []transport.Message, err error) {
	c.op(func() { out, err = c.Transport.Produce(ctx, msgs...) })
	return out, err
}

func (c *cancelAtOp) Subscribe(ctx context.Context, sub transport.Subscription) (cons transport.Consumer, err error) {
	c.op(func() { cons, err = c.Transport.Subscribe(ctx, sub) })
	if !strings.Contains(sub.Group, ".reader.") {
		// The start is over: a k not reached yet is a cancel just after it.
		if c.n.Load() <= c.k {
			c.n.Store(c.k + 1)
			c.cancel()
		}
		return cons, err
	}
	if err == nil {
		cons = &cancelAtOpConsumer{Consumer: cons, c: c}
	}
	return cons, err
}

type cancelAtOpConsumer struct {
	transport.Consumer
	c *cancelAtOp
}

func (r *cancelAtOpConsumer) Poll(ctx context.Context) (msgs []transport.Message, err error) {
	r.c.op(func() { msgs, err = r.Consumer.Poll(ctx) })
	return msgs, err
}

// Serve's ctx canceled at each operation of its start in turn (before,
// after and while it runs): Serve returns nil every time, and the same
// Server (fixed instance id) serves a call after each.
func TestBreak18ServeCanceledAtEachStartOperation(t *testing.T) {
	br := newBroker(t)
	tr := &cancelAtOp{Transport: br, k: -1}
	s, err := rpc.NewServer(tr, rpc.WithName("svc18op"), rpc.WithInstance("svc18op-fixed"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	c := newClient(t, br)

	for k := int64(0); k < 8; k++ {
		for mode := range 3 {
			ctx, cancel := context.WithCancel(context.Background())
			tr.k, tr.mode, tr.cancel = k, mode, cancel
			tr.n.Store(0)
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx) }()
			select {
			case err := <-served:
				require.NoError(t, err, "op %d mode %d", k, mode)
			case <-time.After(15 * time.Second):
				cancel()
				t.Fatalf("op %d mode %d: Serve did not return after its ctx was canceled", k, mode)
			}
			cancel()
			tr.k = -1

			// The same server serves at once afterwards.
			ctx2, cancel2 := context.WithCancel(context.Background())
			served2 := make(chan error, 1)
			go func() { served2 <- s.Serve(ctx2) }()
			callCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
			got, err := rpc.Call[string](callCtx, c, "echo", "after")
			stop()
			cancel2()
			require.NoError(t, err, "op %d mode %d", k, mode)
			assert.Equal(t, "after", got)
			require.NoError(t, <-served2)
		}
	}
}
