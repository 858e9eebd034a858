package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Break17: the quiet holder's look at Close and its deadline, now inside
// readOwn under the lock it takes to turn passive (82c7cf0), against a
// reply consumer that fails polls at random moments and misbehaves, within
// the transport contract, exactly when a poll's context ends (Close, a
// holder's deadline): it returns a transient error instead of ctx.Err(),
// an empty poll window (nil, nil) or a (foreign) record that raced the
// cancel. Many quiet calls at once (handed the
// slot, holding from the start, waiting, passive), Close or the deadlines
// at random moments, and the window between readOwn's first look and its
// lock held open for random lengths by the log line in it.

var errEdge = errors.New("test: edge transient poll failure")

// edgeKnobs are the shares of polls an edgeConsumer disturbs.
type edgeKnobs struct {
	failSoon   float64       // polls cut short by a transient error within failWithin
	failWithin time.Duration // (0, failWithin]
	errAtEnd   float64       // polls whose context ended that return errEdge instead
	emptyAtEnd float64       // polls whose context ended that return (nil, nil) instead
	// polls whose context ended that return a foreign record instead (a
	// fetch whose answer raced the cancel: the next poll sees ctx end)
	foreignAtEnd float64
}

// edgeTransport is a slotTransport whose reply reader is an edgeConsumer.
type edgeTransport struct {
	*slotTransport
	knobs  atomic.Pointer[edgeKnobs]
	onFail atomic.Pointer[func()] // run, on the polling goroutine, before an injected failure is returned
	failed atomic.Int64           // errEdge returned
	empty  atomic.Int64           // empty windows returned at a context's end
	// polling counts polls running at once; overlap, polls that found
	// another running (the slot's promise is one at a time).
	polling, overlap atomic.Int32
}

func newEdge(tr *slotTransport, k edgeKnobs) *edgeTransport {
	et := &edgeTransport{slotTransport: tr}
	et.knobs.Store(&k)
	return et
}

func (t *edgeTransport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	in, err := t.slotTransport.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ec := &edgeConsumer{Consumer: in, t: t}
	if cp, ok := in.(transport.CarryingPoller); ok {
		return &edgeCarrier{edgeConsumer: ec, cp: cp}, nil
	}
	return ec, nil
}

type edgeConsumer struct {
	transport.Consumer
	t *edgeTransport
}

func (c *edgeConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	return c.poll(ctx, c.Consumer.Poll)
}

// poll runs inner, the real poll, and disturbs its outcome as the knobs
// say. A poll that returns an error took no records (the contract), so an
// error may be swapped for another, or for an empty window.
func (c *edgeConsumer) poll(ctx context.Context, inner func(context.Context) ([]transport.Message, error)) ([]transport.Message, error) {
	if c.t.polling.Add(1) > 1 {
		c.t.overlap.Add(1)
	}
	defer c.t.polling.Add(-1)
	k := c.t.knobs.Load()
	pctx, cut := ctx, false
	if chaosHit(k.failSoon) {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, time.Duration(1+rand.Int64N(int64(k.failWithin))))
		defer cancel()
		cut = true
	}
	msgs, err := inner(pctx)
	switch {
	case err == nil:
		return msgs, nil
	case ctx.Err() != nil && chaosHit(k.foreignAtEnd):
		return []transport.Message{{Topic: "replies", Value: []byte("raced the cancel")}}, nil
	case ctx.Err() != nil && chaosHit(k.errAtEnd):
		return nil, c.fail()
	case ctx.Err() != nil && chaosHit(k.emptyAtEnd):
		c.t.empty.Add(1)
		return nil, nil
	case ctx.Err() == nil && cut && pctx.Err() != nil:
		return nil, c.fail()
	}
	return msgs, err
}

func (c *edgeConsumer) fail() error {
	c.t.failed.Add(1)
	if f := c.t.onFail.Load(); f != nil {
		(*f)()
	}
	return errEdge
}

type edgeCarrier struct {
	*edgeConsumer
	cp transport.CarryingPoller
}

func (c *edgeCarrier) PollCarrying(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	return c.poll(ctx, func(ctx context.Context) ([]transport.Message, error) {
		return c.cp.PollCarrying(ctx, msgs, acked)
	})
}

// edgeRig is a slot rig on an edgeTransport whose logger runs *onWarn at
// the holder's "poll failed" line: inside readOwn, between its first look
// at Close and the deadline and the lock it takes to turn passive.
func edgeRig(t *testing.T, carry bool, k edgeKnobs, onWarn *atomic.Pointer[func()]) (*slotRig, *edgeTransport) {
	var et *edgeTransport
	log := slog.New(hookHandler{msg: holderPollFailedMsg, onMsg: onWarn})
	r := newSlotRigOn(t, carry, func(tr *slotTransport) transport.Transport { et = newEdge(tr, k); return et }, WithLogger(log))
	return r, et
}

// spin holds the calling goroutine for about d (a window held open; not a
// wait for readiness).
func spin(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// Close at random moments, among them the holder's window (from the log
// line: after readOwn looked at Close, before it locks to turn passive)
// and the moment a poll fails: many quiet calls that wait (gate: never
// answered before Close) and quiet calls that come and go (echo) on a
// consumer that fails polls at random and answers a context's end with a
// transient error or an empty window. Every call ends at once with
// ErrClosed (or, for echo, its own reply), nothing is left pending,
// waiting or passive, and the slot is let go.
func TestBreak17QuietCloseAtEdges(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var hits, inWindow, atFail int
			for round := range 12 {
				hit, where := quietCloseRound(t, carry, round)
				if hit {
					hits++
				}
				switch where {
				case "window":
					inWindow++
				case "fail":
					atFail++
				}
			}
			t.Logf("closed in the holder's window %d, at a failed poll %d; rounds with a failed poll %d", inWindow, atFail, hits)
		})
	}
}

func quietCloseRound(t *testing.T, carry bool, round int) (hit bool, where string) {
	var onWarn atomic.Pointer[func()]
	r, et := edgeRig(t, carry, edgeKnobs{failSoon: 0.3, failWithin: 3 * time.Millisecond, foreignAtEnd: 0.3, errAtEnd: 0.5, emptyAtEnd: 0.5}, &onWarn)
	const gates, echoes = 12, 4
	type res struct {
		gate bool
		n    int
		got  int
		err  error
		end  time.Time
	}
	var resMu sync.Mutex
	var results []res
	record := func(x res) { resMu.Lock(); results = append(results, x); resMu.Unlock() }
	var wg sync.WaitGroup
	for i := range gates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Call[int](context.Background(), r.c, "gate", i, WithTimeout(10*time.Second))
			record(res{gate: true, err: err, end: time.Now()})
		}()
	}
	stop := make(chan struct{})
	for w := range echoes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := w*1_000_000 + i
				got, err := Call[int](context.Background(), r.c, "echo", n, WithTimeout(10*time.Second))
				record(res{n: n, got: got, err: err, end: time.Now()})
				if err != nil {
					return
				}
			}
		}()
	}
	for range gates {
		r.waitStarted(t, "gate")
	}

	// Close: from the holder's window, from a failed poll, or directly,
	// whichever comes first after a random pause.
	closed := make(chan error, 1)
	closing := make(chan struct{})
	var once sync.Once
	var whereMu sync.Mutex
	doClose := func(w string) {
		once.Do(func() {
			whereMu.Lock()
			where = w
			whereMu.Unlock()
			close(closing)
			go func() { closed <- r.c.Close() }()
		})
	}
	hold := time.Duration(rand.Int64N(int64(2 * time.Millisecond)))
	warn := func() {
		doClose("window")
		// Hold the window open until Close has swept (or longer).
		for !r.c.isClosed() {
			time.Sleep(20 * time.Microsecond) // polling a condition, bounded by the test's timeout
		}
		spin(hold)
	}
	fail := func() { doClose("fail") }
	spin(time.Duration(rand.Int64N(int64(10 * time.Millisecond))))
	switch round % 3 {
	case 0:
		onWarn.Store(&warn)
	case 1:
		et.onFail.Store(&fail)
	}
	// Nudge the holder: a record on the reply topic ends its poll.
	_, err := r.br.Produce(context.Background(), transport.Message{Topic: r.c.cfg.replyTopic, Value: []byte("wake")})
	require.NoError(t, err)
	select {
	case <-closing:
	case <-time.After(map[bool]time.Duration{false: time.Duration(rand.Int64N(int64(20 * time.Millisecond))), true: 300 * time.Millisecond}[round%3 != 2]):
		doClose("direct")
	}
	closedAt := closeReturned(t, closed, func() string { return fmt.Sprintf("round %d: %s", round, slotDump(r.c)) })
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		whereMu.Lock()
		defer whereMu.Unlock()
		t.Fatalf("round %d (closed: %s): calls still running after Close: %s", round, where, slotDump(r.c))
	}
	for _, res := range results {
		if res.err == nil {
			require.False(t, res.gate, "round %d: a gate call was answered", round)
			require.Equal(t, res.n, res.got, "round %d: call %d got another call's reply", round, res.n)
			continue
		}
		require.ErrorIs(t, res.err, ErrClosed, "round %d (closed: %s, gate %v): %v", round, where, res.gate, res.err)
		require.Less(t, res.end.Sub(closedAt), 2*time.Second, "round %d (closed: %s): a call ended long after Close", round, where)
	}
	require.Zero(t, r.c.Stats().Pending, "round %d", round)
	_, h, w, passive := r.c.slotSnapshot()
	require.Nil(t, h, "round %d", round)
	require.Zero(t, w, "round %d", round)
	require.Zero(t, passive, "round %d", round)
	require.Zero(t, et.overlap.Load(), "two polls ran at once")
	return et.failed.Load() > 0, where
}

// Deadlines at the edges: rounds of quiet calls to "hold" (answered, with
// an error, only when the handler's context ends, at about the call's
// deadline) and to "void" (served by nobody: only the call's own deadline
// ends it) with one short timeout, among quiet echo calls, on a consumer
// that fails polls at random moments near the deadlines, answers the end
// of a poll's context (the slot's timer, at the holder's deadline) with a
// transient error or an empty window, and a holder's window held open for
// random lengths, sometimes past its deadline. Each call ends with the
// deadline, not before it (when it is the client's own) and not long
// after; echo calls get their own reply; nothing is left behind.
func TestBreak17QuietDeadlinesAtEdges(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var onWarn atomic.Pointer[func()]
			r, et := edgeRig(t, carry, edgeKnobs{failSoon: 0.7, failWithin: 10 * time.Millisecond, errAtEnd: 0.5, emptyAtEnd: 0.5}, &onWarn)
			var windows atomic.Int64
			warn := func() {
				windows.Add(1)
				spin(time.Duration(rand.Int64N(int64(12 * time.Millisecond))))
			}
			onWarn.Store(&warn)
			const slack = 1500 * time.Millisecond // the race detector and a shared machine
			own, replied, echoed := 0, 0, 0
			for round := range 25 {
				const calls = 10
				timeout := 2*time.Millisecond + time.Duration(rand.Int64N(int64(12*time.Millisecond)))
				var wg sync.WaitGroup
				errs := make([]error, calls)
				took := make([]time.Duration, calls)
				for i := range calls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						t0 := time.Now()
						route := "hold"
						if i%2 == 0 {
							route = "void" // nobody serves it: only the call's own deadline ends it
						}
						_, errs[i] = Call[int](context.Background(), r.c, route, i, WithTimeout(timeout))
						took[i] = time.Since(t0)
					}()
				}
				var echoErr atomic.Pointer[error]
				for w := range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range 4 {
							n := round*1000 + w*100 + i
							got, err := Call[int](context.Background(), r.c, "echo", n, WithTimeout(10*time.Second))
							if err == nil && got != n {
								err = fmt.Errorf("echo %d got %d", n, got)
							}
							if err != nil {
								echoErr.Store(&err)
								return
							}
						}
					}()
				}
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: calls still running: %s", round, slotDump(r.c))
				}
				if p := echoErr.Load(); p != nil {
					t.Fatalf("round %d: %v", round, *p)
				}
				echoed += 12
				for i, err := range errs {
					require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "round %d call %d: %v", round, i, err)
					if i%2 == 0 {
						require.Contains(t, err.Error(), "rpc: call void: ", "round %d call %d", round, i)
					}
					if strings.Contains(err.Error(), "rpc: call hold: ") || strings.Contains(err.Error(), "rpc: call void: ") {
						require.GreaterOrEqual(t, took[i], timeout, "round %d call %d: %v", round, i, err)
						own++
					} else {
						replied++
					}
					require.Less(t, took[i], timeout+slack, "round %d call %d (timeout %v) overran its deadline", round, i, timeout)
				}
				for drained := false; !drained; {
					select {
					case <-r.started:
					default:
						drained = true
					}
				}
				slotSettled(t, r.c)
			}
			t.Logf("own deadline %d, handler's reply %d, echoes %d; injected failures %d, empty windows %d, windows held %d",
				own, replied, echoed, et.failed.Load(), et.empty.Load(), windows.Load())
			require.Zero(t, et.overlap.Load(), "two polls ran at once")
			require.Zero(t, r.c.Stats().Foreign)
			et.knobs.Store(&edgeKnobs{})
			onWarn.Store(nil)
			got, err := Call[int](context.Background(), r.c, "echo", 7)
			require.NoError(t, err)
			require.Equal(t, 7, got)
		})
	}
}

// A storm of quiet calls (context.Background) beside cancelable ones, so
// that pooled pendingCalls switch between the two waits, on the edge
// consumer: echo calls with deadlines of 1µs–5ms or 10s and "void" calls
// (never answered) with 1–8ms, and Close at a random moment, sometimes
// from the holder's window. Each call ends with its own reply, its own
// deadline (not before it, not long after) or ErrClosed (only once Close
// began, and at once); afterwards nothing is pending, the slot's timer is
// not left armed, and no two polls ran at once. Run with -race.
func TestBreak17QuietStormCloseAtEdges(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			for round := range 4 {
				quietStormEdgeRound(t, carry, round)
			}
		})
	}
}

func quietStormEdgeRound(t *testing.T, carry bool, round int) {
	var onWarn atomic.Pointer[func()]
	r, et := edgeRig(t, carry, edgeKnobs{failSoon: 0.2, failWithin: 4 * time.Millisecond, foreignAtEnd: 0.3, errAtEnd: 0.5, emptyAtEnd: 0.5}, &onWarn)
	type call struct {
		n          int
		route      string
		quiet      bool
		timeout    time.Duration
		began, end time.Time
		got        int
		err        error
	}
	const calls, workers = 800, 24
	all := make([]*call, calls)
	for i := range all {
		c := &call{n: i + 1, route: "echo", quiet: rand.IntN(4) != 0, timeout: 10 * time.Second}
		switch k := rand.IntN(10); {
		case k < 3:
			c.timeout = time.Microsecond + time.Duration(rand.Int64N(int64(5*time.Millisecond)))
		case k < 5:
			c.route = "void"
			c.timeout = time.Millisecond + time.Duration(rand.Int64N(int64(7*time.Millisecond)))
		}
		all[i] = c
	}
	done := stormGo(calls, workers, func(i int) {
		c := all[i]
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if !c.quiet {
			ctx, cancel = context.WithCancel(ctx)
		}
		c.began = time.Now()
		c.got, c.err = Call[int](ctx, r.c, c.route, c.n, WithTimeout(c.timeout))
		c.end = time.Now()
		cancel()
	})
	var closeBegan atomic.Int64 // UnixNano
	closed := make(chan error, 1)
	var once sync.Once
	doClose := func() {
		once.Do(func() {
			closeBegan.Store(time.Now().UnixNano())
			go func() { closed <- r.c.Close() }()
		})
	}
	warn := func() {
		if rand.IntN(3) == 0 {
			doClose()
			for !r.c.isClosed() {
				time.Sleep(20 * time.Microsecond) // polling a condition, bounded by the test's timeout
			}
		}
	}
	onWarn.Store(&warn)
	spin(time.Duration(5+rand.IntN(40)) * time.Millisecond) // the storm's own pace
	doClose()
	closedAt := closeReturned(t, closed, func() string { return fmt.Sprintf("round %d: %s", round, slotDump(r.c)) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("round %d: calls still running after Close: %s", round, slotDump(r.c))
	}
	began := time.Unix(0, closeBegan.Load())
	const slack = 1500 * time.Millisecond
	var answered, deadline, closedN int
	for _, c := range all {
		what := fmt.Sprintf("round %d call %d (%s, quiet %v, timeout %v, took %v): %v", round, c.n, c.route, c.quiet, c.timeout, c.end.Sub(c.began), c.err)
		require.Less(t, c.end.Sub(closedAt), slack, "%s: ended long after Close", what)
		if c.err == nil {
			require.Equal(t, "echo", c.route, what)
			require.Equal(t, c.n, c.got, "%s: another call's reply", what)
			answered++
			continue
		}
		switch {
		case errors.Is(c.err, ErrClosed):
			require.False(t, c.end.Before(began), "%s: ErrClosed before Close", what)
			closedN++
		case CodeOf(c.err) == CodeDeadlineExceeded:
			require.Less(t, c.timeout, time.Second, what)
			require.GreaterOrEqual(t, c.end.Sub(c.began), c.timeout, what)
			require.Less(t, c.end.Sub(c.began), c.timeout+slack, what)
			deadline++
		default:
			t.Fatalf("%s: unexpected error", what)
		}
	}
	require.Zero(t, r.c.Stats().Pending, "round %d", round)
	_, h, w, passive := r.c.slotSnapshot()
	require.Nil(t, h, "round %d", round)
	require.Zero(t, w, "round %d", round)
	require.Zero(t, passive, "round %d", round)
	r.c.mu.Lock()
	armed := r.c.slot.timer.Stop()
	r.c.mu.Unlock()
	require.False(t, armed, "round %d: the slot's deadline timer was left armed after Close", round)
	require.Zero(t, et.overlap.Load(), "two polls ran at once")
	t.Logf("round %d: answered %d, deadline %d, closed %d; injected failures %d, empty windows %d", round, answered, deadline, closedN, et.failed.Load(), et.empty.Load())
}

// The deadline in the handed holder's window: a quiet waiter is handed the
// slot (the holder's deadline passed), its first poll fails, and its own
// deadline passes before it turns passive. Its deadline timer (expiry),
// armed since it began to wait, fired while it held the slot and left it
// to readOwn; once passive nothing else would end it: it must end at its
// deadline with the deadline error, not with its reply when that comes
// (here: when the gate opens, seconds later).
func TestBreak17QuietHandedHolderPollFailsAsDeadlinePasses(t *testing.T) {
	var onMsg atomic.Pointer[func()]
	log := slog.New(hookHandler{msg: holderPollFailedMsg, onMsg: &onMsg})
	r := newSlotRig(t, false, WithLogger(log))

	holderDone := r.startCall(t, context.Background(), "gate", 200*time.Millisecond)
	_, holder, _, _ := r.c.slotTaken(t)
	const timeout = 400 * time.Millisecond
	waiterDone := make(chan error, 1)
	t0 := time.Now()
	dl := t0.Add(timeout)
	go func() {
		_, err := Call[int](context.Background(), r.c, "gate", 2, WithTimeout(timeout))
		waiterDone <- err
	}()
	r.waitStarted(t, "gate")
	require.Eventually(t, func() bool { _, _, w, _ := r.c.slotSnapshot(); return w == 1 }, 5*time.Second, time.Millisecond)
	r.c.mu.Lock()
	waiter := r.c.slot.waitHead
	require.True(t, waiter.quiet)
	r.c.mu.Unlock()
	var hit atomic.Bool
	hook := func() {
		onMsg.Store(nil)
		hit.Store(true)
		for time.Now().Before(dl.Add(50 * time.Millisecond)) {
			time.Sleep(time.Until(dl.Add(50 * time.Millisecond))) // past the waiter's deadline: the point of the test
		}
	}
	onMsg.Store(&hook)
	r.failHeldPoll(waiter) // the waiter's first poll, once handed the slot (the holder may poll again before its deadline)

	select {
	case err := <-holderDone:
		require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "%v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not end at its deadline")
	}
	select {
	case err := <-waiterDone:
		took := time.Since(t0)
		require.True(t, hit.Load(), "the handed waiter's poll did not fail")
		require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "%v", err)
		require.Contains(t, err.Error(), "rpc: call gate: ")
		require.GreaterOrEqual(t, took, timeout)
		require.Less(t, took, timeout+time.Second, "the waiter overran its deadline")
	case <-time.After(3 * time.Second):
		t.Fatalf("the handed waiter did not end at its deadline: %s", slotDump(r.c))
	}
	require.NotSame(t, holder, waiter)
	require.Zero(t, r.c.Stats().Pending)
	r.open()
	require.Eventually(t, func() bool { return r.c.Stats().Late == 2 }, 5*time.Second, time.Millisecond)
	slotSettled(t, r.c)
}
