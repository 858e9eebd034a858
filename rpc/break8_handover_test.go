package rpc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// b8Ledger is what the handlers of a break8 test did: which payloads a
// handler finished (returned or panicked), the requests handlers kept after
// returning, and per server the most handlers running at once.
type b8Ledger struct {
	keyed    bool // servers order by key; the keys repeat (n%16)
	mu       sync.Mutex
	keyRuns  map[string]int // server/key → handlers of that key running
	keyClash []string       // two handlers of one key at once on one server
	finished map[int]bool
	kept     []b8Kept
	stopped  map[string]bool // servers whose Serve returned
	late     []string        // handlers started on a server after its Serve returned
}

// b8Kept is a request a handler kept after returning, and a copy of what
// it saw then.
type b8Kept struct {
	req                 *rpc.Request
	topic, key, id      string
	value               []byte
	partition           int32
	offset              int64
	headers             []transport.Header
	headerKeys, headerV []string
}

func newB8Ledger() *b8Ledger {
	return &b8Ledger{finished: make(map[int]bool), stopped: make(map[string]bool), keyRuns: make(map[string]int)}
}

// b8Server is one server of the group with its handler's bookkeeping.
type b8Server struct {
	name          string
	running, most atomic.Int64
	stop          func() error
}

// serve starts a server named name of group g8 with the given
// concurrency. Its handler finishes at once, after a short sleep, blocks
// until its context ends (block), or panics (n%53 == 0); it keeps every
// 7th request it sees.
func (l *b8Ledger) serve(t *testing.T, b *memory.Broker, name string, concurrency int, block func(n int) bool) *b8Server {
	t.Helper()
	srv := &b8Server{name: name}
	opts := []rpc.ServerOption{rpc.WithName("b8"), rpc.WithGroup("g8"), rpc.WithInstance(name),
		rpc.WithConcurrency(concurrency), rpc.WithDrainTimeout(50 * time.Millisecond),
		rpc.WithCommitInterval(time.Millisecond), silent}
	if l.keyed {
		opts = append(opts, rpc.WithKeyOrdering())
	}
	s, err := rpc.NewServer(b, opts...)
	require.NoError(t, err)
	s.HandleFunc("b8", func(ctx context.Context, r *rpc.Request) (any, error) {
		now := srv.running.Add(1)
		defer srv.running.Add(-1)
		for m := srv.most.Load(); now > m && !srv.most.CompareAndSwap(m, now); m = srv.most.Load() {
		}
		var n int
		if err := json.Unmarshal(r.Value, &n); err != nil {
			return nil, err
		}
		kr := name + "/" + r.Key
		l.mu.Lock()
		if l.keyRuns[kr]++; l.keyed && l.keyRuns[kr] > 1 {
			l.keyClash = append(l.keyClash, kr)
		}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.keyRuns[kr]--
			l.mu.Unlock()
		}()
		l.mu.Lock()
		if l.stopped[name] {
			l.late = append(l.late, fmt.Sprintf("%s ran %d after its Serve returned", name, n))
		}
		if n%7 == 0 {
			k := b8Kept{req: r, topic: r.Topic, key: r.Key, id: r.ID, value: bytes.Clone(r.Value),
				partition: r.Partition, offset: r.Offset, headers: r.Headers}
			for _, h := range r.Headers {
				k.headerKeys, k.headerV = append(k.headerKeys, h.Key), append(k.headerV, h.Value)
			}
			l.kept = append(l.kept, k)
		}
		l.mu.Unlock()
		if block != nil && block(n) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if rand.IntN(4) == 0 {
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		}
		l.mu.Lock()
		l.finished[n] = true
		l.mu.Unlock()
		if n%53 == 0 {
			panic(fmt.Sprintf("break8 handler panics on %d", n))
		}
		return n, nil
	})
	stop := startServe(t, s)
	srv.stop = func() error {
		err := stop()
		l.mu.Lock()
		l.stopped[name] = true
		l.mu.Unlock()
		return err
	}
	return srv
}

// checkCommits fails t when a committed offset of topic b8 passes a
// record whose handler never finished: records are read back from the
// broker to learn their payloads.
func (l *b8Ledger) checkCommits(t *testing.T, b *memory.Broker, parts int, payloads map[int32][]int) {
	t.Helper()
	for p := range int32(parts) {
		off, err := b.Committed("g8", "b8", p)
		if err != nil || off <= 0 {
			continue
		}
		for int64(len(payloads[p])) < off {
			msgs, err := b.Fetch(context.Background(), "b8", p, int64(len(payloads[p])), 100)
			require.NoError(t, err)
			for _, m := range msgs {
				var n int
				require.NoError(t, json.Unmarshal(m.Value, &n))
				payloads[p] = append(payloads[p], n)
			}
		}
		l.mu.Lock()
		for o := range off {
			if n := payloads[p][o]; !l.finished[n] {
				l.mu.Unlock()
				t.Fatalf("partition %d committed up to %d, past offset %d (payload %d), whose handler never finished", p, off, o, n)
			}
		}
		l.mu.Unlock()
	}
}

// checkKept fails t when a request a handler kept changed after it
// returned (a buffer reused under it).
func (l *b8Ledger) checkKept(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotEmpty(t, l.kept)
	for _, k := range l.kept {
		r := k.req
		require.Equal(t, k.topic, r.Topic)
		require.Equal(t, k.key, r.Key)
		require.Equal(t, k.id, r.ID)
		require.Equal(t, k.partition, r.Partition)
		require.Equal(t, k.offset, r.Offset)
		require.Equal(t, k.value, []byte(r.Value), "a kept request's payload changed")
		require.Len(t, r.Headers, len(k.headerKeys))
		for i, h := range r.Headers {
			require.Equal(t, k.headerKeys[i], h.Key)
			require.Equal(t, k.headerV[i], h.Value)
		}
	}
}

// Servers of tiny concurrency (1 and 2) on many partitions, with a second
// and third server joining and leaving mid-batch (rebalances), graceful and
// hard stops (handlers that block until their context ends), handlers that
// panic, and handlers that keep their request: no committed offset ever
// passes a record whose handler did not finish, no server runs more
// handlers than its concurrency, none starts a handler after its Serve
// returned, every request is handled in the end (at least once), and kept
// requests are intact.
//
// With key ordering (no hand-over: the loop's goroutine ends with it), no
// two handlers of one key run at once on a server.
func TestBreak8HandOverUnderRebalancesAndStops(t *testing.T) {
	for _, tc := range []struct {
		conc  int
		keyed bool
	}{{1, false}, {2, false}, {1, true}, {3, true}} {
		conc := tc.conc
		t.Run(fmt.Sprint("concurrency ", conc, map[bool]string{true: " key ordering"}[tc.keyed]), func(t *testing.T) {
			const parts = 8
			b := newBroker(t, memory.WithTopic("b8", parts))
			t.Cleanup(func() { b.Close() })
			l := newB8Ledger()
			l.keyed = tc.keyed
			a := l.serve(t, b, "a", conc, nil)
			b8Joined(t, b, "a")
			servers := []*b8Server{a}
			all := []*b8Server{a}

			total := 1500
			if testing.Short() {
				total = 400
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var prod sync.WaitGroup
			prod.Add(1)
			go func() { // raw requests, spread over the partitions, in small bursts
				defer prod.Done()
				c := newClient(t, b)
				for n := 1; n <= total && ctx.Err() == nil; n++ {
					key := fmt.Sprint(n)
					if l.keyed {
						key = fmt.Sprint("k", n%16)
					}
					if err := c.Notify(ctx, "b8", n, rpc.WithKey(key)); err != nil {
						return
					}
					if n%4 == 0 { // paced, so that the churn below meets batches in flight
						time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
					}
				}
			}()

			payloads := make(map[int32][]int)
			churn := 0
			deadline := time.Now().Add(20 * time.Second)
			for {
				l.checkCommits(t, b, parts, payloads)
				prodDone := false
				l.mu.Lock()
				prodDone = len(l.finished) >= total
				l.mu.Unlock()
				if prodDone || time.Now().After(deadline) {
					break
				}
				// A server joins or leaves mid-batch: a blocking one
				// (hard stop) every other time.
				churn++
				name := fmt.Sprint("x", churn)
				if len(servers) > 1 && churn%2 == 0 {
					last := servers[len(servers)-1]
					require.NoError(t, last.stop())
					servers = servers[:len(servers)-1]
				} else if len(servers) < 3 {
					var block func(int) bool
					if churn%4 == 1 {
						block = func(n int) bool { return n%3 == 0 }
					}
					servers = append(servers, l.serve(t, b, name, conc, block))
					b8Joined(t, b, name) // a stop before the join fails Serve; the join itself rebalances mid-batch
					all = append(all, servers[len(servers)-1])
				}
				for range 5 {
					time.Sleep(time.Duration(1+rand.IntN(4)) * time.Millisecond) // a window for the churn to bite, not a readiness wait
					l.checkCommits(t, b, parts, payloads)
				}
			}
			prod.Wait()
			for _, s := range servers[1:] {
				require.NoError(t, s.stop())
			}
			// a alone now: it must get every partition and finish the rest.
			require.Eventually(t, func() bool {
				l.checkCommits(t, b, parts, payloads)
				l.mu.Lock()
				defer l.mu.Unlock()
				return len(l.finished) >= total
			}, 20*time.Second, 5*time.Millisecond, "every request handled at least once")
			require.NoError(t, a.stop())
			l.checkCommits(t, b, parts, payloads)
			for p := range int32(parts) { // a graceful stop commits what was done: everything
				off, err := b.Committed("g8", "b8", p)
				require.NoError(t, err)
				_, latest, err := b.Offsets("b8", p)
				require.NoError(t, err)
				assert.Equal(t, latest, max(off, 0), "partition %d: all done, all committed", p)
			}
			l.checkKept(t)
			l.mu.Lock()
			assert.Empty(t, l.late)
			assert.Empty(t, l.keyClash, "handlers of one key ran at once on one server")
			l.mu.Unlock()
			for _, s := range all {
				assert.LessOrEqual(t, s.most.Load(), int64(conc), "server %s ran more handlers at once than its concurrency", s.name)
			}
			t.Logf("churn %d", churn)
		})
	}
}

// Serve stopped at random moments around the hand-over: lone records, one
// at a time, each run by the goroutine that polled it while an idle worker
// takes the poll loop over; the stop lands before, during or after it.
// Serve always returns promptly, no commit passes a record whose handler
// did not finish, and a new Serve finishes whatever was left.
func TestBreak8StopDuringHandOver(t *testing.T) {
	for _, conc := range []int{1, 2} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			const parts = 2
			b := newBroker(t, memory.WithTopic("b8", parts))
			t.Cleanup(func() { b.Close() })
			l := newB8Ledger()
			c := newClient(t, b)
			payloads := make(map[int32][]int)
			rounds := 60
			if testing.Short() {
				rounds = 20
			}
			n := 0
			for round := range rounds {
				srv := l.serve(t, b, fmt.Sprint("s", round), conc, nil)
				b8Joined(t, b, fmt.Sprint("s", round))
				for range 1 + rand.IntN(3) {
					n++
					require.NoError(t, c.Notify(context.Background(), "b8", n, rpc.WithKey(fmt.Sprint(n))))
					time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond) // the stop's moment, not a readiness wait
				}
				start := time.Now()
				require.NoError(t, srv.stop())
				require.Less(t, time.Since(start), 2*time.Second, "round %d: Serve took long to stop", round)
				l.checkCommits(t, b, parts, payloads)
			}
			srv := l.serve(t, b, "last", conc, nil)
			b8Joined(t, b, "last")
			require.Eventually(t, func() bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				return len(l.finished) >= n
			}, 10*time.Second, 5*time.Millisecond, "every request handled at least once")
			require.NoError(t, srv.stop())
			l.checkCommits(t, b, parts, payloads)
			for p := range int32(parts) {
				off, err := b.Committed("g8", "b8", p)
				require.NoError(t, err)
				_, latest, err := b.Offsets("b8", p)
				require.NoError(t, err)
				assert.Equal(t, latest, max(off, 0), "partition %d: all done, all committed", p)
			}
			l.checkKept(t)
		})
	}
}

// A handler that ignores its context, with the hand-over on (concurrency
// 1: the record runs in the goroutine that polled it): Serve's stop gives
// up on it after the drain timeout and the grace, returns, and the request
// is redelivered to the next Serve, not committed.
func TestBreak8HardStopOfAHandlerIgnoringItsContext(t *testing.T) {
	t.Parallel() // mostly waits out timeouts: beside the other slow tests (see main_test.go)
	if testing.Short() {
		t.Skip("waits out the settle stage's grace (6 s)")
	}
	b := newBroker(t, memory.WithTopic("b8h", 1))
	t.Cleanup(func() { b.Close() })
	release := make(chan struct{})
	entered := make(chan string, 4)
	newServer := func(name string) *rpc.Server {
		s, err := rpc.NewServer(b, rpc.WithName("b8h"), rpc.WithGroup("g8h"), rpc.WithInstance(name),
			rpc.WithConcurrency(1), rpc.WithDrainTimeout(50*time.Millisecond), silent)
		require.NoError(t, err)
		rpc.Handle(s, "b8h", func(ctx context.Context, n int) (int, error) {
			entered <- name
			if name == "stuck" {
				<-release // ignores ctx
			}
			return n, nil
		})
		return s
	}
	stop := startServe(t, newServer("stuck"))
	c := newClient(t, b)
	res := make(chan error, 1)
	go func() {
		_, err := rpc.Call[int](context.Background(), c, "b8h", 1, rpc.WithTimeout(20*time.Second))
		res <- err
	}()
	require.Equal(t, "stuck", <-entered)
	start := time.Now()
	require.NoError(t, stop())
	require.Less(t, time.Since(start), 10*time.Second)
	off, err := b.Committed("g8h", "b8h", 0)
	require.NoError(t, err)
	require.LessOrEqual(t, off, int64(0), "the stuck request was committed")
	startServe(t, newServer("next"))
	require.Equal(t, "next", <-entered, "redelivered to the next Serve")
	require.NoError(t, <-res)
	close(release) // the abandoned handler returns: nothing of it is committed
}

// b8Joined waits until instance is a member of group g8.
func b8Joined(t *testing.T, b *memory.Broker, instance string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, g := range b.Groups() {
			if g.Name != "g8" {
				continue
			}
			for _, m := range g.Members {
				if m.Instance == instance {
					return true
				}
			}
		}
		return false
	}, 5*time.Second, time.Millisecond, "%s joined the group", instance)
}

// One record per Poll (WithMaxPollRecords(1)) and a backlog: every batch
// is a lone record, so the loop hands itself over at every poll, and the
// worker that takes it over polls at once. The record the loop keeps must
// be counted in flight before the takeover can be taken: the new poller
// would otherwise see one record fewer in flight and hand over too, and
// concurrency+1 handlers run.
func TestBreak8HandOverCountsTheKeptRecordBeforeTheTakeover(t *testing.T) {
	for _, conc := range []int{1, 2} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			b := newBroker(t, memory.WithTopic("b8k", 1), memory.WithMaxPollRecords(1))
			t.Cleanup(func() { b.Close() })
			c := newClient(t, b)
			n := 3000
			if testing.Short() {
				n = 500
			}
			for i := range n {
				require.NoError(t, c.Notify(context.Background(), "b8k", i))
			}
			var running, most, handled atomic.Int64
			s, err := rpc.NewServer(b, rpc.WithName("b8k"), rpc.WithGroup("g8k"), rpc.WithConcurrency(conc), silent)
			require.NoError(t, err)
			rpc.Handle(s, "b8k", func(ctx context.Context, i int) (int, error) {
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				if i%16 == 0 {
					time.Sleep(50 * time.Microsecond) // some handlers outlast a poll
				}
				running.Add(-1)
				handled.Add(1)
				return i, nil
			})
			stop := startServe(t, s)
			require.Eventually(t, func() bool { return handled.Load() >= int64(n) }, 30*time.Second, time.Millisecond)
			require.NoError(t, stop())
			require.LessOrEqual(t, most.Load(), int64(conc), "handlers running at once")
		})
	}
}
