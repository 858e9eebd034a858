package rpc

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Break16: the quiet wait (awaitQuiet) against Close.

// holderPollFailedMsg is what readOwn logs when the holder's poll fails
// transiently, after it checked for Close and before it turns passive.
const holderPollFailedMsg = "rpc: reply poll failed; the reply reader retries"

// hookHandler is a slog.Handler that runs onMsg for each record whose
// message is msg (on the logging goroutine) and drops everything.
type hookHandler struct {
	msg   string
	onMsg *atomic.Pointer[func()]
}

func (h hookHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h hookHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		if f := h.onMsg.Load(); f != nil {
			(*f)()
		}
	}
	return nil
}
func (h hookHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h hookHandler) WithGroup(string) slog.Handler      { return h }

// A quiet call that holds the slot from the start (it took it when its
// request was sent, or carried its request on its first poll) and whose
// poll then fails transiently turns passive and waits on its channel
// (exchange: readWait, then await). Close may run between readOwn's look
// at Close and the call turning passive: Close leaves a holder to its own
// poll, and the call, passive by the time it waits, must still see that
// the client closed. (Broke with the quiet wait: the call waited, on its
// channel alone, until its deadline, and ended with the deadline error
// instead of ErrClosed. The window is a few instructions wide; the log
// line in it, which a slow handler makes as long as it likes, holds it
// open here.)
func TestBreak16QuietHolderPollFailsAsClientCloses(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var onMsg atomic.Pointer[func()]
			log := slog.New(hookHandler{msg: holderPollFailedMsg, onMsg: &onMsg})
			r := newSlotRig(t, carry, WithLogger(log))
			closed := make(chan error, 1)
			hook := func() {
				onMsg.Store(nil) // once
				go func() { closed <- r.c.Close() }()
				// Hold the window open until Close has run its sweep
				// (c.closed is set under mu, with the sweep).
				require.Eventually(t, r.c.isClosed, 5*time.Second, 50*time.Microsecond)
			}
			onMsg.Store(&hook)

			const timeout = 4 * time.Second
			done := make(chan error, 1)
			t0 := time.Now()
			go func() {
				_, err := Call[int](context.Background(), r.c, "gate", 1, WithTimeout(timeout))
				done <- err
			}()
			r.waitStarted(t, "gate")
			_, holder, _, _ := r.c.slotTaken(t)
			require.NotNil(t, holder)
			// Fail the holder's next poll: a record on the reply topic
			// (foreign) ends its current one.
			r.tr.consumer().failPolls.Store(1)
			_, err := r.br.Produce(context.Background(), transport.Message{Topic: r.c.cfg.replyTopic, Value: []byte("wake")})
			require.NoError(t, err)

			closeReturned(t, closed, func() string { return "or did not run" })
			select {
			case err := <-done:
				took := time.Since(t0)
				require.ErrorIs(t, err, ErrClosed, "after %v", took)
				require.Equal(t, CodeUnavailable, CodeOf(err))
				require.Less(t, took, timeout/2, "the call ended at its deadline, not at Close")
			case <-time.After(2 * timeout):
				t.Fatal("the call did not return")
			}
			require.Zero(t, r.c.Stats().Pending)
			_, h, w, passive := r.c.slotSnapshot()
			require.Nil(t, h)
			require.Zero(t, w)
			require.Zero(t, passive)
		})
	}
}

// The same window on the other way a quiet call comes to hold the slot:
// handed it while waiting (awaitQuiet takes slotToken), its poll fails and
// Close runs before it turns passive. awaitQuiet looks at Close after its
// readWait: the call ends with ErrClosed at once. (Held before the fix.)
func TestBreak16QuietHandedHolderPollFailsAsClientCloses(t *testing.T) {
	var onMsg atomic.Pointer[func()]
	log := slog.New(hookHandler{msg: holderPollFailedMsg, onMsg: &onMsg})
	r := newSlotRig(t, false, WithLogger(log))
	closed := make(chan error, 1)
	hook := func() {
		onMsg.Store(nil)
		go func() { closed <- r.c.Close() }()
		require.Eventually(t, r.c.isClosed, 5*time.Second, 50*time.Microsecond)
	}

	// The holder: its deadline hands the slot to the waiter.
	holderDone := r.startCall(t, context.Background(), "gate", 300*time.Millisecond)
	_, holder, _, _ := r.c.slotTaken(t)
	const timeout = 4 * time.Second
	waiterDone := make(chan error, 1)
	t0 := time.Now()
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
	onMsg.Store(&hook)
	r.failHeldPoll(waiter) // the waiter's first poll, once handed the slot (the holder may poll again before its deadline)

	select {
	case err := <-holderDone:
		require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "%v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not end at its deadline")
	}
	closeReturned(t, closed, func() string { return "or the handed holder's poll did not fail" })
	select {
	case err := <-waiterDone:
		require.ErrorIs(t, err, ErrClosed)
		require.Less(t, time.Since(t0), timeout/2)
	case <-time.After(2 * timeout):
		t.Fatal("the waiter did not return")
	}
	require.NotSame(t, holder, waiter)
	require.Zero(t, r.c.Stats().Pending)
	_, h, w, passive := r.c.slotSnapshot()
	require.Nil(t, h)
	require.Zero(t, w)
	require.Zero(t, passive)
}

// The deadline in that window: a quiet holder's poll fails, and its
// deadline passes before it turns passive (the deadline's timer, the
// slot's, has nothing left to cut). The call ends at its deadline, with
// the deadline error, leaves nothing behind, and its reply, when it comes,
// is counted late, once.
func TestBreak16QuietHolderPollFailsAsDeadlinePasses(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var onMsg atomic.Pointer[func()]
			log := slog.New(hookHandler{msg: holderPollFailedMsg, onMsg: &onMsg})
			r := newSlotRig(t, carry, WithLogger(log))
			const timeout = 300 * time.Millisecond
			var dl time.Time
			var hit atomic.Bool
			hook := func() {
				onMsg.Store(nil)
				hit.Store(true)
				for time.Now().Before(dl) {
					time.Sleep(time.Until(dl)) // past the call's deadline: the point of the test
				}
			}
			onMsg.Store(&hook)
			done := make(chan error, 1)
			t0 := time.Now()
			dl = t0.Add(timeout)
			go func() {
				_, err := Call[int](context.Background(), r.c, "gate", 1, WithTimeout(timeout))
				done <- err
			}()
			r.waitStarted(t, "gate")
			r.c.slotTaken(t)
			r.tr.consumer().failPolls.Store(1)
			_, err := r.br.Produce(context.Background(), transport.Message{Topic: r.c.cfg.replyTopic, Value: []byte("wake")})
			require.NoError(t, err)
			select {
			case err := <-done:
				took := time.Since(t0)
				require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "%v", err)
				require.GreaterOrEqual(t, took, timeout)
				require.Less(t, took, timeout+2*time.Second)
			case <-time.After(10 * time.Second):
				t.Fatal("the call did not return")
			}
			require.True(t, hit.Load(), "the holder's poll did not fail")
			require.Zero(t, r.c.Stats().Pending)
			r.open()
			require.Eventually(t, func() bool { return r.c.Stats().Late == 1 }, 5*time.Second, time.Millisecond)
			slotSettled(t, r.c)
			require.EqualValues(t, 1, r.c.Stats().Late)
			require.EqualValues(t, 1, r.c.Stats().Foreign) // the wake-up record
		})
	}
}
