package upstash

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The delivery guarantees of the rpc layer (issue 5, parts 1 and 6), proved
// end to end over real HTTP on loopback: every transport is its own
// upstash.Transport, as separate services are, against one REST server.

// guaranteeBackoff retries quickly, and for long enough to ride out a run
// of injected server faults.
var guaranteeBackoff = WithBackoff(Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 20 * time.Second})

// restTransports returns a NewTransports over one REST server (memory
// backend, 3 partitions, auto-create on, short instance expiry) behind
// faults, when not nil. srv, when not nil, receives the server.
func restTransports(srv **resttest.Server, faults *resttest.Faults) rpctest.NewTransports {
	return func(tb testing.TB, n int) []transport.Transport {
		tb.Helper()
		s := startServer(tb, serverConfig{
			broker: []memory.Option{memory.WithPartitions(3), memory.WithAutoCreate(true)},
			server: []restserver.Option{restserver.WithInstanceExpiry(2 * time.Second)},
			faults: faults,
		})
		if srv != nil {
			*srv = s.Server
		}
		out := make([]transport.Transport, n)
		for i := range out {
			tr, err := New(WithURL(s.URL), guaranteeBackoff)
			require.NoError(tb, err)
			tb.Cleanup(func() { assert.NoError(tb, tr.Close()) })
			out[i] = tr
		}
		return out
	}
}

// TestCrashRecoveryREST kills the serving process three times in the middle
// of 1,000 in-flight Sends (no drain, its consumer instance abandoned on the
// REST server as a crash leaves it): every request gets exactly one
// completion notice and no handler's side effect happens twice.
func TestCrashRecoveryREST(t *testing.T) {
	res := rpctest.TestCrashRecovery(t, restTransports(nil, nil), 1000, 3)
	t.Logf("%+v", res)
}

// TestFaultsREST makes 2,000 calls through transports that inject 10% of
// each client-side fault (failed, lost, duplicated, reordered and delayed
// produces and polls) on top of real HTTP.
func TestFaultsREST(t *testing.T) {
	res := rpctest.TestUnderFaults(t, restTransports(nil, nil), 2000, 0.10)
	t.Logf("%+v", res)
}

// TestServerFaultsREST makes 2,000 calls through a REST server that answers
// 10% of requests 503, stalls 10%, drops the connection of 10% before
// handling them and of 10% after (the response is lost: a produce is
// written, a consume moves the instance's position). Every call gets its own
// right reply, and every handler runs once.
func TestServerFaultsREST(t *testing.T) {
	const calls, callers = 2000, 32
	var srv *resttest.Server
	trs := restTransports(&srv, &resttest.Faults{
		Seed: 5, Unavailable: 0.10, Slow: 0.10, SlowDelay: 5 * time.Millisecond, Reset: 0.10, ResetAfter: 0.10,
	})(t, 2)
	const topic = "server-faults-echo"
	type echo struct {
		Caller, N int
	}

	var runs handlerRuns
	s, err := rpc.NewServer(trs[1], rpc.WithName("server-faults-srv"), rpc.WithLogger(discard), rpc.WithConcurrency(8))
	require.NoError(t, err)
	rpc.Handle(s, topic, func(ctx context.Context, in echo) (echo, error) {
		runs.ran(ctx)
		return in, nil
	})
	rpctest.Serve(t, s)

	c, err := rpc.NewClient(trs[0], rpc.WithName("server-faults-cli"), rpc.WithLogger(discard), rpc.WithResend(250*time.Millisecond))
	require.NoError(t, err)
	defer c.Close()

	var correct, wrong, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range callers {
		wg.Go(func() {
			for i := w; i < calls; i += callers {
				in := echo{Caller: w, N: i}
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := rpc.Call[echo](cctx, c, topic, in)
				ccancel()
				switch {
				case err != nil:
					failed.Add(1)
					t.Errorf("call %d: %v", i, err)
				case out != in:
					wrong.Add(1)
				default:
					correct.Add(1)
				}
			}
		})
	}
	wg.Wait()
	handlerRuns, twice := runs.counts()
	fs := srv.Faults.Stats()
	t.Logf("server faults: %d/%d calls correct, %d wrong, %d failed, %d handler runs (%d requests run more than once); "+
		"injected %+v, %d HTTP requests reaching the server; %d requests resent by the client, %d duplicates kept from running by dedup",
		correct.Load(), calls, wrong.Load(), failed.Load(), handlerRuns, twice, fs, srv.REST.Stats().Requests, c.Stats().Resent, s.Stats().Duplicates)
	assert.Equal(t, int64(calls), correct.Load(), "calls with the right reply")
	assert.Zero(t, wrong.Load(), "replies delivered to the wrong caller")
	assert.Zero(t, twice, "handlers run more than once")
	assert.Equal(t, int64(calls), handlerRuns)
	for name, n := range map[string]int64{"Unavailable": fs.Unavailable, "Slow": fs.Slow, "Reset": fs.Reset, "ResetAfter": fs.ResetAfter} {
		assert.Positive(t, n, "injected %s faults", name)
	}
}

// discard is a logger that drops everything.
var discard = slog.New(slog.DiscardHandler)
