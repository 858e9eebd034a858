package rpc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Break16: storms of quiet calls (context.Background: they wait on their
// channel alone, awaitQuiet) mixed with calls whose context can be
// canceled (they wait in a select), on one client, so that pooled
// pendingCalls switch between the two: deadlines of 1µs–1ms that fire as
// the slot is handed on, as replies are delivered, as polls fail, and
// Close in the middle.

// quietCall is one call of a quiet storm and what came of it.
type quietCall struct {
	n          int
	quiet      bool          // context.Background, else a cancelable context
	timeout    time.Duration // WithTimeout
	cancelAt   time.Duration // > 0: its (cancelable) context is canceled then
	began, end time.Time
	err        error
	got        int
}

// quietStormResult sums a storm up.
type quietStormResult struct {
	answered, deadline, canceled, closed, chaos int
	closedAt                                    time.Time // when Close returned; zero without Close
}

// runQuietStorm makes calls calls on r.c from workers goroutines: 70%
// quiet (a third each with timeouts of 1µs–1ms, 1–5ms and 10s), 30% with
// a cancelable context (half canceled after 0–3ms, half with tiny
// timeouts). closeAfter > 0 closes the client then. It checks each call:
// its own reply, or an error that is its own (deadline only for a short
// timeout, and not before it; cancel only if canceled; ErrClosed only
// after Close), in time (its deadline, or Close, plus slack).
func runQuietStorm(t *testing.T, r *slotRig, ct *chaosTransport, calls, workers int, closeAfter time.Duration) quietStormResult {
	t.Helper()
	all := make([]*quietCall, calls)
	for i := range all {
		qc := &quietCall{n: i + 1, timeout: 10 * time.Second, quiet: true}
		switch k := rand.IntN(10); {
		case k < 2:
			qc.timeout = time.Microsecond + time.Duration(rand.Int64N(int64(time.Millisecond)))
		case k < 4:
			qc.timeout = time.Millisecond + time.Duration(rand.Int64N(int64(4*time.Millisecond)))
		case k < 7:
		case k < 8:
			qc.quiet = false
			qc.cancelAt = time.Duration(rand.Int64N(int64(3 * time.Millisecond)))
		case k < 9:
			qc.quiet = false
			qc.timeout = time.Microsecond + time.Duration(rand.Int64N(int64(2*time.Millisecond)))
		default:
			qc.quiet = false
		}
		all[i] = qc
	}
	var res quietStormResult
	res.closedAt = stormDrive(t, r.c, calls, workers, closeAfter, func(i int) {
		qc := all[i]
		ctx := context.Background()
		var cancel context.CancelFunc = func() {}
		if !qc.quiet {
			ctx, cancel = context.WithCancel(ctx)
		}
		var stop func() bool
		if qc.cancelAt > 0 {
			stop = time.AfterFunc(qc.cancelAt, cancel).Stop
		}
		qc.began = time.Now()
		qc.got, qc.err = Call[int](ctx, r.c, "echo", qc.n, WithTimeout(qc.timeout))
		qc.end = time.Now()
		if stop != nil {
			stop()
		}
		cancel()
	})
	slack := 2 * time.Second // the race detector and a shared machine
	for _, qc := range all {
		what := fmt.Sprintf("call %d (quiet %v, timeout %v, cancel %v, took %v): %v", qc.n, qc.quiet, qc.timeout, qc.cancelAt, qc.end.Sub(qc.began), qc.err)
		if !res.closedAt.IsZero() && qc.end.After(res.closedAt.Add(slack)) {
			t.Fatalf("%s: ended %v after Close returned", what, qc.end.Sub(res.closedAt))
		}
		took := qc.end.Sub(qc.began)
		if qc.err == nil {
			require.Equal(t, qc.n, qc.got, "call %d got another call's reply", qc.n)
			res.answered++
			continue
		}
		var e *Error
		require.ErrorAs(t, qc.err, &e, what)
		switch {
		case !res.closedAt.IsZero() && errors.Is(qc.err, ErrClosed):
			res.closed++
		case errors.Is(qc.err, errChaos) && (qc.timeout < time.Second || qc.cancelAt > 0):
			res.chaos++ // its request could not be sent in time
		case e.Code() == CodeDeadlineExceeded:
			require.True(t, qc.timeout < time.Second, what)
			require.GreaterOrEqual(t, took, qc.timeout, what)
			require.Less(t, took, qc.timeout+slack, what)
			res.deadline++
		case e.Code() == CodeCanceled:
			require.NotZero(t, qc.cancelAt, what)
			require.Less(t, took, qc.cancelAt+slack, what)
			res.canceled++
		default:
			t.Fatalf("%s: unexpected error", what)
		}
	}
	if ct != nil {
		require.Zero(t, ct.cons.overlap.Load(), "two polls of the reply consumer ran at once")
	}
	t.Logf("answered %d, deadline %d, canceled %d, closed %d, chaos %d", res.answered, res.deadline, res.canceled, res.closed, res.chaos)
	return res
}

func quietStormRig(t *testing.T, carry bool, rates chaosRates) (*slotRig, *chaosTransport) {
	var ct *chaosTransport
	r := newSlotRigOn(t, carry, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct })
	ct.rates.Store(&rates)
	return r, ct
}

func TestBreak16QuietStorm(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			r, ct := quietStormRig(t, carry, chaosRates{})
			res := runQuietStorm(t, r, ct, 3000, 48, 0)
			slotSettled(t, r.c)
			st := r.c.Stats()
			require.Zero(t, st.Foreign)
			// Every late reply is a call's that gave up, counted once.
			require.LessOrEqual(t, st.Late, int64(res.deadline+res.canceled))
			echoWorks(t, r.c)
		})
	}
}

func TestBreak16QuietStormFaults(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			r, ct := quietStormRig(t, carry, chaosRates{produceFail: 0.02, pollFail: 0.05, pollSlow: 0.1, ackLost: 0.1, carryFail: 0.1})
			runQuietStorm(t, r, ct, 2000, 32, 0)
			ct.rates.Store(&chaosRates{})
			slotSettled(t, r.c)
			echoWorks(t, r.c)
		})
	}
}

func TestBreak16QuietStormClose(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			r, ct := quietStormRig(t, carry, chaosRates{pollFail: 0.05, pollSlow: 0.1, ackLost: 0.05})
			runQuietStorm(t, r, ct, 3000, 48, time.Duration(5+rand.IntN(30))*time.Millisecond)
			slotSettled(t, r.c)
		})
	}
}

// Two clients at once, one that resends (none of its calls is quiet) and
// one that does not: pendingCalls come from one pool, so a pendingCall
// whose last call waited quietly waits in a select next, and back.
func TestBreak16QuietStormBesideResend(t *testing.T) {
	for _, resend := range []bool{false, true} {
		t.Run(map[bool]string{false: "quiet", true: "resend"}[resend], func(t *testing.T) {
			t.Parallel()
			var opts []ClientOption
			if resend {
				opts = append(opts, WithResend(2*time.Millisecond))
			}
			var ct *chaosTransport
			r := newSlotRigOn(t, false, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct }, opts...)
			ct.rates.Store(&chaosRates{pollFail: 0.02, pollSlow: 0.1})
			runQuietStorm(t, r, ct, 2000, 32, 0)
			ct.rates.Store(&chaosRates{})
			slotSettled(t, r.c)
			echoWorks(t, r.c)
		})
	}
}
