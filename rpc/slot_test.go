package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Tests of the reading slot (slot.go): calls that read their own replies.

var slotQuiet = WithLogger(slog.New(slog.DiscardHandler))

// slotTransport is a memory broker, without ProduceOwned (as a remote
// transport), whose reply reader (Tail) can fail polls on demand and, with
// carry, carries records (transport.CarryingPoller: Produce, then Poll).
// It counts the client's own produces.
type slotTransport struct {
	transport.Transport
	br       *memory.Broker
	carry    bool
	produced atomic.Int64 // Produce calls made through it
	mu       sync.Mutex
	cons     *faultConsumer
}

func (t *slotTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	t.produced.Add(1)
	return t.br.Produce(ctx, msgs...)
}

func (t *slotTransport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	in, err := t.br.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	fc := &faultConsumer{Consumer: in}
	t.mu.Lock()
	t.cons = fc
	t.mu.Unlock()
	if t.carry {
		return &carryConsumer{faultConsumer: fc, br: t.br}, nil
	}
	return fc, nil
}

func (t *slotTransport) consumer() *faultConsumer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cons
}

var errPollTransient = errors.New("test: transient poll failure")

// faultConsumer fails the next failPolls polls with errPollTransient, and
// the first poll that begins while failIf, when set, reports true (failIf
// is then cleared): a test that means one caller's poll names it there,
// where failPolls fails whichever poll comes first.
type faultConsumer struct {
	transport.Consumer
	failPolls atomic.Int32
	failIf    atomic.Pointer[func() bool]
	polls     atomic.Int64 // polls that reached the inner consumer
	failed    atomic.Int64
}

func (f *faultConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	if p := f.failIf.Load(); p != nil && (*p)() && f.failIf.CompareAndSwap(p, nil) {
		f.failed.Add(1)
		return nil, errPollTransient
	}
	for {
		n := f.failPolls.Load()
		if n <= 0 {
			break
		}
		if f.failPolls.CompareAndSwap(n, n-1) {
			f.failed.Add(1)
			return nil, errPollTransient
		}
	}
	f.polls.Add(1)
	return f.Consumer.Poll(ctx)
}

// carryConsumer is a transport.CarryingPoller over a memory Tail consumer:
// it produces the carried records with the broker's Produce, acks, then
// polls. produceErr, when set, decides a carried produce's outcome instead:
// written says whether the records are produced all the same.
type carryConsumer struct {
	*faultConsumer
	br         *memory.Broker
	carried    atomic.Int64
	produceErr atomic.Pointer[func(context.Context, []transport.Message) (written bool, err error)]
}

func (c *carryConsumer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func([]transport.Message, error)) ([]transport.Message, error) {
	if len(msgs) == 0 {
		acked(nil, nil)
		return c.Poll(ctx)
	}
	if err := ctx.Err(); err != nil {
		acked(nil, err)
		return nil, err
	}
	var (
		out []transport.Message
		err error
	)
	if hook := c.produceErr.Load(); hook != nil {
		var write bool
		write, err = (*hook)(ctx, msgs)
		if write {
			_, _ = c.br.Produce(ctx, msgs...)
		}
	} else {
		out, err = c.br.Produce(ctx, msgs...)
	}
	acked(out, err)
	if err != nil {
		return nil, fmt.Errorf("carried produce: %w", err)
	}
	c.carried.Add(1)
	return c.Poll(ctx)
}

// slotRig is a served broker with handlers "echo" (answers at once),
// "gate" (answers once the gate is open, even after its deadline) and "hold" (answers, with an
// error, when its context ends or the gate opens), and a client on a slotTransport over it.
type slotRig struct {
	br      *memory.Broker
	tr      *slotTransport
	c       *Client
	gate    chan struct{}
	once    sync.Once
	started chan string // "gate" and "hold" requests, as they start
}

// open opens the gate.
func (r *slotRig) open() { r.once.Do(func() { close(r.gate) }) }

func newSlotRig(t *testing.T, carry bool, opts ...ClientOption) *slotRig {
	return newSlotRigOn(t, carry, nil, opts...)
}

// newSlotRigOn is newSlotRig with the client on wrap(the slotTransport)
// when wrap is not nil.
func newSlotRigOn(t *testing.T, carry bool, wrap func(*slotTransport) transport.Transport, opts ...ClientOption) *slotRig {
	t.Helper()
	br, err := memory.New(memory.WithPartitions(4))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	r := &slotRig{br: br, tr: &slotTransport{Transport: br, br: br, carry: carry}, gate: make(chan struct{}), started: make(chan string, 1024)}
	s, err := NewServer(br, WithName("srv"), WithConcurrency(64), slotQuiet)
	require.NoError(t, err)
	Handle(s, "echo", func(ctx context.Context, n int) (int, error) { return n, nil })
	Handle(s, "gate", func(ctx context.Context, n int) (int, error) {
		r.started <- "gate"
		select { // past the caller's deadline, whatever its context says
		case <-r.gate:
		case <-time.After(10 * time.Second):
		}
		return n, nil
	})
	Handle(s, "hold", func(ctx context.Context, n int) (int, error) {
		r.started <- "hold"
		select {
		case <-r.gate:
		case <-ctx.Done():
		}
		return 0, ctx.Err()
	})
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-served) })
	t.Cleanup(r.open) // before the server stops: no handler waits
	var ct transport.Transport = r.tr
	if wrap != nil {
		ct = wrap(r.tr)
	}
	c, err := NewClient(ct, append([]ClientOption{WithName("cli"), slotQuiet}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	r.c = c
	// Warm up: topics made, group joined.
	got, err := Call[int](context.Background(), c, "echo", 0)
	require.NoError(t, err)
	require.Equal(t, 0, got)
	return r
}

// slotState returns the slot's state, its holder and the number of
// waiters and passive calls.
func (c *Client) slotSnapshot() (state slotState, holder *pendingCall, waiters, passive int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := c.slot.waitHead; w != nil; w = w.nextW {
		waiters++
	}
	return c.slot.state, c.slot.holder, waiters, c.slot.passive
}

// failHeldPoll fails the first poll that c makes while pc holds its
// reply slot.
func (r *slotRig) failHeldPoll(pc *pendingCall) {
	held := func() bool { _, h, _, _ := r.c.slotSnapshot(); return h == pc }
	r.tr.consumer().failIf.Store(&held)
}

// startCall starts a call of route with 1 (its context ctx, its timeout
// timeout) and waits for its handler to start: the call's error comes on
// the channel returned.
func (r *slotRig) startCall(t *testing.T, ctx context.Context, route string, timeout time.Duration) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Call[int](ctx, r.c, route, 1, WithTimeout(timeout))
		done <- err
	}()
	r.waitStarted(t, route)
	return done
}

// waitStarted waits for a handler of kind to start.
func (r *slotRig) waitStarted(t *testing.T, kind string) {
	t.Helper()
	select {
	case got := <-r.started:
		require.Equal(t, kind, got)
	case <-time.After(5 * time.Second):
		t.Fatalf("no %q handler started", kind)
	}
}

// Many callers share the slot: every call is answered, within a bounded
// time, whoever reads; and when they are done the slot is free again.
func TestSlotManyCallersAllAnswered(t *testing.T) {
	r := newSlotRig(t, false)
	const callers, each = 64, 50
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var answered atomic.Int64
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := g*1000 + i
				got, err := Call[int](ctx, r.c, "echo", n)
				if !assert.NoError(t, err) || !assert.Equal(t, n, got) {
					return
				}
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(callers*each), answered.Load())
	require.Zero(t, r.c.Stats().Pending)
	require.Zero(t, r.c.Stats().Foreign)
	state, holder, waiters, passive := r.c.slotSnapshot()
	require.Nil(t, holder)
	require.Zero(t, waiters)
	require.Zero(t, passive)
	require.NotEqual(t, slotCaller, state)
}

// A lone caller reads its own reply: the background reader never polls,
// and no pending call is left.
func TestSlotLoneCallerReadsItself(t *testing.T) {
	r := newSlotRig(t, false)
	fc := r.tr.consumer()
	polls := fc.polls.Load()
	const calls = 200
	for i := range calls {
		got, err := Call[int](context.Background(), r.c, "echo", i)
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
	// One poll per call, its own (each returns with the call's reply, the
	// only record), and the background reader's, which polls only after
	// the slot was left free for idleReadAfter: none while calls follow
	// each other, at most one cut short at the start.
	n := fc.polls.Load() - polls
	require.GreaterOrEqual(t, n, int64(calls))
	require.LessOrEqual(t, n, int64(calls+1))
	require.Zero(t, r.c.Stats().Pending)
}

// A caller reading the reply topic delivers the replies of the calls
// waiting meanwhile: with the holder's own reply held back, the waiters
// are answered while it still holds the slot.
func TestSlotHolderDeliversOthersReplies(t *testing.T) {
	r := newSlotRig(t, false)
	holderDone := r.startCall(t, context.Background(), "gate", 10*time.Second)
	state, holder, _, _ := r.c.slotTaken(t)
	require.Equal(t, slotCaller, state, "the first call reads")
	require.NotNil(t, holder)

	var progress []string
	var mu sync.Mutex
	for i := range 20 {
		got, err := Call[int](context.Background(), r.c, "echo", i+10, WithProgress(func(rp *Reply) {
			mu.Lock()
			progress = append(progress, string(rp.Value))
			mu.Unlock()
		}))
		require.NoError(t, err)
		require.Equal(t, i+10, got)
		// The holder still holds the slot: it delivered the reply.
		_, h, _, _ := r.c.slotSnapshot()
		require.Same(t, holder, h, "call %d was answered by the holder's reading", i)
	}
	r.open()
	select {
	case err := <-holderDone:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the holder's own call never returned")
	}
	require.Zero(t, r.c.Stats().Pending)
}

// Progress notices reach a waiting call in order while another call reads.
func TestSlotProgressDeliveredByHolder(t *testing.T) {
	br, err := memory.New(memory.WithPartitions(4))
	require.NoError(t, err)
	defer br.Close()
	s, err := NewServer(br, WithName("srv"), WithConcurrency(8), slotQuiet)
	require.NoError(t, err)
	gate := make(chan struct{})
	started := make(chan struct{}, 1)
	Handle(s, "gate", func(ctx context.Context, n int) (int, error) {
		started <- struct{}{}
		<-gate
		return n, nil
	})
	Handle(s, "steps", func(ctx context.Context, n int) (int, error) {
		for i := range n {
			if err := Progress(ctx, i); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	sctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(br, WithName("cli"), slotQuiet)
	require.NoError(t, err)
	defer c.Close()

	holderDone := make(chan error, 1)
	go func() {
		_, err := Call[int](context.Background(), c, "gate", 1, WithTimeout(10*time.Second))
		holderDone <- err
	}()
	<-started
	_, holder, _, _ := c.slotTaken(t)
	require.NotNil(t, holder)
	var got []string
	n, err := Call[int](context.Background(), c, "steps", 50, WithProgress(func(r *Reply) { got = append(got, string(r.Value)) }))
	require.NoError(t, err)
	require.Equal(t, 50, n)
	require.Len(t, got, 50)
	for i, v := range got {
		require.Equal(t, fmt.Sprint(i), v)
	}
	_, h, _, _ := c.slotSnapshot()
	require.Same(t, holder, h)
	close(gate)
	require.NoError(t, <-holderDone)
}

// A holder whose deadline passes while others wait gives the slot up: the
// waiters are answered all the same, and its reply, when it comes, is
// counted late.
func TestSlotHolderDeadlineWaitersAnswered(t *testing.T) {
	r := newSlotRig(t, false)
	holderDone := r.startCall(t, context.Background(), "gate", 150*time.Millisecond)
	state, holder, _, _ := r.c.slotTaken(t)
	require.Equal(t, slotCaller, state)
	require.NotNil(t, holder)

	// Waiters whose replies come only after the holder gave up.
	const waiters = 8
	results := make(chan error, waiters)
	for i := range waiters {
		go func() {
			got, err := Call[int](context.Background(), r.c, "gate", 100+i, WithTimeout(10*time.Second))
			if err == nil && got != 100+i {
				err = fmt.Errorf("got %d, want %d", got, 100+i)
			}
			results <- err
		}()
	}
	for range waiters {
		r.waitStarted(t, "gate")
	}
	require.Eventually(t, func() bool { _, _, w, _ := r.c.slotSnapshot(); return w == waiters }, 5*time.Second, time.Millisecond)

	select {
	case err := <-holderDone:
		require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "%v", err)
		require.ErrorIs(t, err, ErrTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not give up at its deadline")
	}
	_, h, _, _ := r.c.slotSnapshot()
	require.NotSame(t, holder, h, "the slot was handed on")

	r.open()
	for range waiters {
		select {
		case err := <-results:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter was never answered after the holder gave up")
		}
	}
	require.Zero(t, r.c.Stats().Pending)
	// The holder's reply came after it gave up: late, counted by whoever
	// read it (a waiter, or the background reader once the slot idles).
	require.Eventually(t, func() bool { return r.c.Stats().Late == 1 }, 5*time.Second, time.Millisecond)
}

// A holder whose parent context is canceled gives the slot up at once.
func TestSlotHolderParentCanceled(t *testing.T) {
	r := newSlotRig(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	holderDone := r.startCall(t, ctx, "gate", 10*time.Second)
	state, _, _, _ := r.c.slotTaken(t)
	require.Equal(t, slotCaller, state)
	cancel()
	select {
	case err := <-holderDone:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not give up when its context ended")
	}
	echoWorks(t, r.c)
	r.open()
}

// Close while a call holds the slot: it returns ErrClosed promptly, as do
// the waiters, and no goroutine is left (goleak, in TestMain).
func TestSlotCloseWhileHolding(t *testing.T) {
	r := newSlotRig(t, false)
	holderDone := r.startCall(t, context.Background(), "hold", 30*time.Second)
	state, _, _, _ := r.c.slotTaken(t)
	require.Equal(t, slotCaller, state)
	waiterDone := make(chan error, 1)
	go func() {
		_, err := Call[int](context.Background(), r.c, "hold", 2, WithTimeout(30*time.Second))
		waiterDone <- err
	}()
	r.waitStarted(t, "hold")
	require.Eventually(t, func() bool { _, _, w, _ := r.c.slotSnapshot(); return w == 1 }, 5*time.Second, time.Millisecond)

	require.NoError(t, r.c.Close())
	for _, ch := range []<-chan error{holderDone, waiterDone} {
		select {
		case err := <-ch:
			require.ErrorIs(t, err, ErrClosed)
			require.Equal(t, CodeUnavailable, CodeOf(err))
		case <-time.After(5 * time.Second):
			t.Fatal("a call did not return after Close")
		}
	}
	_, err := Call[int](context.Background(), r.c, "echo", 1)
	require.ErrorIs(t, err, ErrClosed)
}

// A transient poll error while a call holds the slot: the call gives the
// slot to the background reader, which retries with backoff, and waits;
// it is answered, and so are the calls made meanwhile. Once a poll works
// again, calls read for themselves.
func TestSlotPollErrorFallsBackToReader(t *testing.T) {
	r := newSlotRig(t, false)
	fc := r.tr.consumer()
	fc.failPolls.Store(3) // the holder's poll, then two of the reader's retries
	got, err := Call[int](context.Background(), r.c, "echo", 5, WithTimeout(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, 5, got)
	require.EqualValues(t, 3, fc.failed.Load())

	// Calls made while the reader retries are answered through it.
	fc.failPolls.Store(2)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := Call[int](context.Background(), r.c, "echo", i, WithTimeout(10*time.Second))
			assert.NoError(t, err)
			assert.Equal(t, i, got)
		}()
	}
	wg.Wait()
	require.Zero(t, r.c.Stats().Pending)

	// Healthy again: a lone call reads for itself.
	require.Eventually(t, func() bool {
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		return !r.c.slot.failing && r.c.slot.passive == 0
	}, 5*time.Second, time.Millisecond)
	holderDone := r.startCall(t, context.Background(), "gate", 10*time.Second)
	require.Eventually(t, func() bool { s, _, _, _ := r.c.slotSnapshot(); return s == slotCaller }, 5*time.Second, time.Millisecond)
	r.open()
	require.NoError(t, <-holderDone)
}

// With a consumer that carries records, a reading call's request rides on
// its first poll: the client produces nothing itself.
func TestSlotCarriedRequest(t *testing.T) {
	r := newSlotRig(t, true)
	cc := r.c.replies.(*carryConsumer)
	produced, carried := r.tr.produced.Load(), cc.carried.Load()
	for i := range 100 {
		got, err := Call[int](context.Background(), r.c, "echo", i)
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
	require.Equal(t, produced, r.tr.produced.Load(), "no request produced apart from a poll")
	require.Equal(t, carried+100, cc.carried.Load())

	// A call that finds the background reader polling (the slot was left
	// free a while) takes the slot over and carries too.
	require.Eventually(t, func() bool { s, _, _, _ := r.c.slotSnapshot(); return s == slotReader }, 5*time.Second, time.Millisecond)
	got, err := Call[int](context.Background(), r.c, "echo", 1000)
	require.NoError(t, err)
	require.Equal(t, 1000, got)
	require.Equal(t, produced, r.tr.produced.Load())
	require.Equal(t, carried+101, cc.carried.Load())

	// Concurrent callers: those that read carry, the others produce.
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				got, err := Call[int](context.Background(), r.c, "echo", g*100+i)
				assert.NoError(t, err)
				assert.Equal(t, g*100+i, got)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(32*20), r.tr.produced.Load()-produced+cc.carried.Load()-carried-101)
}

// A carried produce that fails returns the send error, as Produce would,
// and nothing is polled; the slot is free for the next call.
func TestSlotCarriedProduceFails(t *testing.T) {
	r := newSlotRig(t, true)
	cc := r.c.replies.(*carryConsumer)
	refuse := func(context.Context, []transport.Message) (bool, error) {
		return false, fmt.Errorf("refused: %w", transport.ErrPermissionDenied)
	}
	cc.produceErr.Store(&refuse)
	polls, produced := cc.polls.Load(), r.tr.produced.Load()
	_, err := Call[int](context.Background(), r.c, "echo", 1)
	require.ErrorIs(t, err, transport.ErrPermissionDenied)
	require.Equal(t, CodePermissionDenied, CodeOf(err), "%v", err)
	require.Equal(t, polls, cc.polls.Load(), "nothing was polled")
	require.Equal(t, produced, r.tr.produced.Load(), "a permanent error is not retried")
	require.Zero(t, r.c.Stats().Pending)
	state, holder, _, _ := r.c.slotSnapshot()
	require.Nil(t, holder)
	require.NotEqual(t, slotCaller, state)

	// A transient failure: produce retries it on its own.
	transient := func(context.Context, []transport.Message) (bool, error) { return false, errors.New("connection reset") }
	cc.produceErr.Store(&transient)
	got, err := Call[int](context.Background(), r.c, "echo", 2)
	require.NoError(t, err)
	require.Equal(t, 2, got)
	require.Equal(t, produced+1, r.tr.produced.Load(), "retried with Produce")

	// Outcome unknown (written, in fact): the call waits for the reply.
	unknown := func(context.Context, []transport.Message) (bool, error) {
		return true, fmt.Errorf("lost answer: %w", transport.ErrOutcomeUnknown)
	}
	cc.produceErr.Store(&unknown)
	got, err = Call[int](context.Background(), r.c, "echo", 3)
	require.NoError(t, err)
	require.Equal(t, 3, got)
	require.Equal(t, produced+1, r.tr.produced.Load(), "not produced again")

	cc.produceErr.Store(nil)
	got, err = Call[int](context.Background(), r.c, "echo", 4)
	require.NoError(t, err)
	require.Equal(t, 4, got)
}

// WithResend: calls never read (they must resend on time), the background
// reader answers them.
func TestSlotResendCallsArePassive(t *testing.T) {
	r := newSlotRig(t, false, WithResend(20*time.Millisecond))
	holderDone := r.startCall(t, context.Background(), "gate", 10*time.Second)
	require.Eventually(t, func() bool {
		s, h, _, p := r.c.slotSnapshot()
		return s == slotReader && h == nil && p == 1
	}, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return r.c.Stats().Resent > 0 }, 5*time.Second, time.Millisecond)
	r.open()
	require.NoError(t, <-holderDone)
}

// ownedSlotTransport is a slotTransport with ProduceOwned, as the embedded
// broker has.
type ownedSlotTransport struct {
	*slotTransport
	owned atomic.Int64
}

func (t *ownedSlotTransport) ProduceOwned(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	t.owned.Add(1)
	return t.br.ProduceOwned(ctx, msgs...)
}

// A transport that takes records over (ProduceOwned) saves nothing by
// carrying them, and a carried produce would copy: a reading call hands
// its request over, then polls. A request whose payload the caller owns
// ([]byte) is copied either way, and carried.
func TestSlotOwnedRequestNotCarried(t *testing.T) {
	var ot *ownedSlotTransport
	r := newSlotRigOn(t, true, func(st *slotTransport) transport.Transport {
		ot = &ownedSlotTransport{slotTransport: st}
		return ot
	})
	cc := r.c.replies.(*carryConsumer)
	owned, carried := ot.owned.Load(), cc.carried.Load()
	for i := range 50 {
		got, err := Call[int](context.Background(), r.c, "echo", i)
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
	require.Equal(t, owned+50, ot.owned.Load())
	require.Equal(t, carried, cc.carried.Load())

	reply, err := r.c.Call(context.Background(), "echo", []byte("7"))
	require.NoError(t, err)
	require.Equal(t, "7", string(reply.Value))
	require.Equal(t, carried+1, cc.carried.Load())
	require.Equal(t, owned+50, ot.owned.Load())
}

// A carried produce still retrying when the call's deadline passes (a
// transport that retries until its context ends) ends the call with the
// deadline's error, as a produce of its own would; one whose context is
// canceled, with the cancel.
func TestSlotCarriedProduceCutByDeadline(t *testing.T) {
	r := newSlotRig(t, true)
	cc := r.c.replies.(*carryConsumer)
	stuck := func(ctx context.Context, _ []transport.Message) (bool, error) {
		<-ctx.Done()
		return false, fmt.Errorf("produce: %w (the request was in flight)", ctx.Err())
	}
	cc.produceErr.Store(&stuck)
	_, err := Call[int](context.Background(), r.c, "echo", 1, WithTimeout(50*time.Millisecond))
	require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "%v", err)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = Call[int](ctx, r.c, "echo", 2, WithTimeout(10*time.Second))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, CodeCanceled, CodeOf(err), "%v", err)

	cc.produceErr.Store(nil)
	got, err := Call[int](context.Background(), r.c, "echo", 3)
	require.NoError(t, err)
	require.Equal(t, 3, got)
	require.Zero(t, r.c.Stats().Pending)
}
