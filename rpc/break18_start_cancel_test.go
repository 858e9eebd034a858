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

	"github.com/kafkarpc/kafkarpc/internal/testutil"
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

// Serve's ctx canceled at each operation of its start in turn (before,
// after and while it runs): Serve returns nil every time, and the same
// Server (fixed instance id) serves a call after each.
func TestBreak18ServeCanceledAtEachStartOperation(t *testing.T) {
	br := newBroker(t)
	tr := testutil.NewCancelAtOp(br)
	s, err := rpc.NewServer(tr, rpc.WithName("svc18op"), rpc.WithInstance("svc18op-fixed"), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "echo", func(_ context.Context, v string) (string, error) { return v, nil })
	c := newClient(t, br)

	for k := int64(0); k < 8; k++ {
		for _, mode := range []testutil.CancelMode{testutil.CancelBefore, testutil.CancelAfter, testutil.CancelWhile} {
			ctx, cancel := context.WithCancel(context.Background())
			tr.Arm(k, mode, cancel)
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
			tr.Disarm()

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
