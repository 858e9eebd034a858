package rpc

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Break16: deadlines that fire as the slot changes hands. Calls to "hold"
// (answered with an error only when the handler's context ends, i.e. at
// about the call's deadline) all with the same timeout, started together:
// the holder's deadline ends its poll and it hands the slot to the oldest
// waiter, whose own deadline (its expiry timer, for a quiet call) fires
// at about the same moment, and so on down the line; the handlers' error
// replies race all of it. Quiet calls and cancelable ones are mixed.
// Every call must end with the deadline (its own timer's, or its
// handler's error reply, code deadline_exceeded), not before its
// deadline and not long after; nothing is left pending, waiting or
// passive, and the slot still serves.
func TestBreak16QuietDeadlinesAsSlotHandedOn(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			r := newSlotRig(t, carry)
			own, replied := 0, 0
			for round := range 40 {
				const calls = 8
				timeout := time.Millisecond + time.Duration(rand.Int64N(int64(15*time.Millisecond)))
				var wg sync.WaitGroup
				errs := make([]error, calls)
				took := make([]time.Duration, calls)
				for i := range calls {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx := context.Background()
						if i%3 == 2 {
							var cancel context.CancelFunc
							ctx, cancel = context.WithCancel(ctx)
							defer cancel()
						}
						t0 := time.Now()
						_, errs[i] = Call[int](ctx, r.c, "hold", i, WithTimeout(timeout))
						took[i] = time.Since(t0)
					}()
				}
				done := make(chan struct{})
				go func() { wg.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: calls still running: %s", round, slotDump(r.c))
				}
				for i, err := range errs {
					require.Equal(t, CodeDeadlineExceeded, CodeOf(err), "round %d call %d: %v", round, i, err)
					if strings.Contains(err.Error(), "rpc: call hold: ") {
						// The client's own deadline (its error names
						// the call; the handler's reply does not): not
						// before it.
						require.GreaterOrEqual(t, took[i], timeout, "round %d call %d: %v", round, i, err)
						own++
					} else {
						// The handler's error reply: its deadline is the
						// timeout header's, whole milliseconds from the
						// record's timestamp, so it may come a little
						// before the client's.
						replied++
					}
					require.Less(t, took[i], timeout+2*time.Second, "round %d call %d", round, i)
				}
				// The handlers' starts, drained (those that ran).
				for drained := false; !drained; {
					select {
					case <-r.started:
					default:
						drained = true
					}
				}
				slotSettled(t, r.c)
			}
			t.Logf("ended by their own deadline %d, by their handler's error reply %d", own, replied)
			st := r.c.Stats()
			require.Zero(t, st.Foreign)
			require.LessOrEqual(t, st.Late, int64(40*8))
			echoWorks(t, r.c)
		})
	}
}
