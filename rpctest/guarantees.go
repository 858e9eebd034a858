package rpctest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// FaultResult is what TestUnderFaults measured.
type FaultResult struct {
	Calls, Correct, Wrong, Failed int
	HandlerRuns                   int64
	Injected                      FaultStats
}

// TestUnderFaults makes calls concurrent calls through transports that
// inject each kind of fault at rate (0.1 is 10%): produce errors, lost
// produce responses, duplicated and reordered produces, delays, poll errors,
// lost polls, duplicated and reordered polls, on the client's and on the
// server's side. Every call must get its own right reply, and dedup must
// keep every handler to one run.
func TestUnderFaults(t *testing.T, newTransports NewTransports, calls int, rate float64) FaultResult {
	t.Helper()
	trs := newTransports(t, 2)
	faults := func(seed uint64) Faults {
		return Faults{
			Seed: seed, ProduceFail: rate, ProduceLost: rate, ProduceDuplicate: rate, ProduceReorder: rate, ProduceDelay: rate,
			PollFail: rate, PollDrop: rate, PollDuplicate: rate, PollReorder: rate, PollDelay: rate,
		}
	}
	cliT, srvT := Faulty(trs[0], faults(1)), Faulty(trs[1], faults(2))
	prefix := "faults-" + uuid.NewString()[:8]
	topic := prefix + "-echo"

	var runs sync.Map // request id → *atomic.Int64
	s, err := rpc.NewServer(srvT, rpc.WithName(prefix+"-srv"), rpc.WithLogger(quiet), rpc.WithConcurrency(8))
	require.NoError(t, err)
	rpc.Handle(s, topic, func(ctx context.Context, in echoReq) (echoReq, error) {
		id := rpc.RequestID(ctx)
		n, _ := runs.LoadOrStore(id, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		return in, nil
	})
	stopServe := Serve(t, s)
	defer func() { assert.NoError(t, stopServe()) }()

	c, err := rpc.NewClient(cliT, rpc.WithName(prefix+"-cli"), rpc.WithLogger(quiet), rpc.WithResend(250*time.Millisecond))
	require.NoError(t, err)
	defer c.Close()

	res := FaultResult{Calls: calls}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const callers = 32
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < calls; i += callers {
				in := echoReq{Text: fmt.Sprintf("caller-%d", w), N: i}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := rpc.Call[echoReq](ctx, c, topic, in)
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					res.Failed++
					t.Errorf("call %d: %v", i, err)
				case out != in:
					res.Wrong++
				default:
					res.Correct++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	runs.Range(func(_, v any) bool {
		n := v.(*atomic.Int64).Load()
		res.HandlerRuns += n
		assert.Equal(t, int64(1), n, "a handler ran more than once")
		return true
	})
	s1, s2 := cliT.Stats(), srvT.Stats()
	res.Injected = FaultStats{
		ProduceFail: s1.ProduceFail + s2.ProduceFail, ProduceLost: s1.ProduceLost + s2.ProduceLost,
		ProduceDuplicate: s1.ProduceDuplicate + s2.ProduceDuplicate, ProduceReorder: s1.ProduceReorder + s2.ProduceReorder,
		ProduceDelay: s1.ProduceDelay + s2.ProduceDelay, PollFail: s1.PollFail + s2.PollFail, PollDrop: s1.PollDrop + s2.PollDrop,
		PollDuplicate: s1.PollDuplicate + s2.PollDuplicate, PollReorder: s1.PollReorder + s2.PollReorder, PollDelay: s1.PollDelay + s2.PollDelay,
	}
	assert.Equal(t, calls, res.Correct, "calls with the right reply")
	assert.Zero(t, res.Wrong, "replies delivered to the wrong caller")
	t.Logf("faults: %d/%d calls correct, %d wrong, %d failed, %d handler runs; injected %+v", res.Correct, calls, res.Wrong, res.Failed, res.HandlerRuns, res.Injected)
	return res
}

// CrashResult is what TestCrashRecovery measured.
type CrashResult struct {
	Requests, Answered, DuplicateEffects, Missing int
	Kills                                         int
}

// tallyCrash counts, per request id, its completion notices and the side
// effects of its handler into res.
func tallyCrash(t testing.TB, res *CrashResult, ids []string, notices map[string]int, effects *sync.Map) {
	for _, id := range ids {
		switch n := notices[id]; {
		case n == 0:
			res.Missing++
		case n == 1:
			res.Answered++
		default:
			t.Errorf("request %s got %d completion notices", id, n)
		}
		if v, ok := effects.Load(id); ok && v.(*atomic.Int64).Load() > 1 {
			res.DuplicateEffects++
		}
	}
}

// startCrashServer starts a server of the crash test, handling topic with
// handler; stop kills it (no drain).
func startCrashServer(t testing.TB, tr transport.Transport, prefix, topic string, handler func(context.Context, int) (int, error)) (stop func()) {
	s, err := rpc.NewServer(tr, rpc.WithName(prefix+"-srv"), rpc.WithLogger(quiet),
		rpc.WithInstance(uuid.NewString()), rpc.WithDrainTimeout(0), rpc.WithSessionTimeout(300*time.Millisecond), rpc.WithConcurrency(16))
	require.NoError(t, err)
	rpc.Handle(s, topic, handler)
	serving := Serve(t, s)
	return func() { _ = serving() }
}

// TestCrashRecovery sends requests with Send, kills the server kills times
// while they are in flight (its context canceled with no drain, its
// consumer abandoned in the group as a crashed process leaves it), starts a
// new server each time, and checks that every request gets exactly one
// completion notice and that no handler's side effect happened twice.
func TestCrashRecovery(t *testing.T, newTransports NewTransports, requests, kills int) CrashResult {
	t.Helper()
	trs := newTransports(t, 2)
	// A killed server stops polling: with members that heartbeat by
	// themselves, its max poll interval is what frees its partitions.
	srvT := Faulty(trs[1], Faults{AbandonOnClose: true, MaxPollInterval: 300 * time.Millisecond})
	prefix := "crash-" + uuid.NewString()[:8]
	topic := prefix + "-jobs"

	var effects sync.Map // request id → *atomic.Int64: the handler's side effects
	handler := func(ctx context.Context, n int) (int, error) {
		// Work that either completes (and has its effect) or is cut short.
		select {
		case <-time.After(time.Duration(1+n%3) * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		v, _ := effects.LoadOrStore(rpc.RequestID(ctx), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		return n, nil
	}
	start := func() (stop func()) { return startCrashServer(t, srvT, prefix, topic, handler) }

	c, err := rpc.NewClient(trs[0], rpc.WithName(prefix+"-cli"), rpc.WithLogger(quiet))
	require.NoError(t, err)
	defer c.Close()
	var mu sync.Mutex
	notices := map[string]int{}
	answered := make(chan struct{}, requests)
	require.NoError(t, c.OnNotice(func(ctx context.Context, r *rpc.Reply) error {
		if r.Kind != rpc.KindReply {
			return nil
		}
		mu.Lock()
		notices[r.CorrelationID]++
		mu.Unlock()
		answered <- struct{}{}
		return nil
	}))

	ids := make([]string, 0, requests)
	for i := range requests {
		id, err := c.Send(context.Background(), topic, i, rpc.WithKey(fmt.Sprint(i)))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	stop := start()
	res := CrashResult{Requests: requests}
	got := 0
	waitFor := func(n int) {
		deadline := time.After(60 * time.Second)
		for got < n {
			select {
			case <-answered:
				got++
			case <-deadline:
				t.Fatalf("%d of %d requests answered", got, requests)
			}
		}
	}
	for k := 1; k <= kills; k++ {
		waitFor(requests * k / (kills + 1))
		stop() // kill: no drain, consumer abandoned
		res.Kills++
		stop = start()
	}
	waitFor(requests)
	stop()

	mu.Lock()
	defer mu.Unlock()
	tallyCrash(t, &res, ids, notices, &effects)
	assert.Equal(t, requests, res.Answered, "requests answered exactly once")
	assert.Zero(t, res.Missing)
	assert.Zero(t, res.DuplicateEffects, "handler side effects run twice")
	t.Logf("crash: %d/%d answered once after %d kills, %d duplicate side effects, %d missing; client dropped %d duplicate notices",
		res.Answered, requests, res.Kills, res.DuplicateEffects, res.Missing, c.Stats().DuplicateNotices)
	return res
}

var _ transport.Transport = (*FaultyTransport)(nil)
