package upstash

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Cut answers and rebalances together: two rpc servers of one group behind
// a proxy that cuts one consume answer in four, the second stopped and
// started again every 40 calls (its partitions move to the first and
// back). Every call is answered.
//
// Handlers that run twice are logged, not failed on: the rebalances alone
// run some requests twice (records handled but not yet committed move to
// the other server before their dedup markers reach it): with this proxy
// passing every answer whole, 0 to 23 of 400 in 5 runs under -race; with
// it cutting one in four, 0 to 11.
func TestBreak13RPCServersBehindCuttingProxyWithChurnLoseNoRequest(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(4)}})
	var n atomic.Int64
	u, cuts := cuttingProxy(t, s.URL, func([]byte) bool { return n.Add(1)%4 == 0 })
	var runs handlerRuns
	newServer := func(name string) *rpc.Server {
		srv, err := rpc.NewServer(newTestTransport(t, u), rpc.WithName("churn-srv"), rpc.WithInstance(name),
			rpc.WithLogger(discard), rpc.WithConcurrency(8))
		require.NoError(t, err)
		rpc.Handle(srv, "echo", func(ctx context.Context, r echoReq) (echoReq, error) {
			runs.ran(ctx)
			return r, nil
		})
		return srv
	}
	serve := func(srv *rpc.Server) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx) }()
		return func() {
			cancel()
			// Stopped while starting (joining, catching up on the dedup
			// topic), Serve says it was cancelled.
			if err := <-served; !errors.Is(err, context.Canceled) {
				assert.NoError(t, err)
			}
		}
	}
	stopA := serve(newServer("a"))
	defer stopA()

	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("churn-cli"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()

	const callers, each, churnEvery = 16, 25, 40
	var done atomic.Int64
	churned := make(chan struct{})
	var restarts int
	go func() {
		defer close(churned)
		stopB := serve(newServer("b"))
		for next := int64(churnEvery); done.Load() < callers*each; {
			if done.Load() < next {
				select {
				case <-time.After(5 * time.Millisecond): // pacing, not a readiness wait
				case <-t.Context().Done():
					stopB()
					return
				}
				continue
			}
			next += churnEvery
			stopB()
			restarts++
			stopB = serve(newServer("b"))
		}
		stopB()
	}()
	failed := callEcho(t, cli, callers, each, 20*time.Second, "churn", func() { done.Add(1) })
	<-churned
	total, twice := runs.counts()
	t.Logf("%d calls, %d failed, %d answers cut, %d restarts of the second server, %d handler runs (%d requests run twice)",
		callers*each, failed, cuts.Load(), restarts, total, twice)
	assert.Positive(t, cuts.Load())
	assert.Zero(t, failed)
}
