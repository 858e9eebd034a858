package rpc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Close as the slot changes hands: a holder gets its reply (and hands the
// slot to a waiter) at the moment the client closes. Whatever the order,
// every call returns promptly, no call is left pending, and the slot is
// left with no holder or waiter. (Found by break8: a waiter handed the
// slot that took it up after Close returned ErrClosed but stayed in
// pending.)
func TestBreak8SlotCloseAsSlotHandedOn(t *testing.T) {
	leftPending := 0
	for i := range 40 {
		r := newSlotRig(t, false)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Call[int](context.Background(), r.c, "gate", 1, WithTimeout(10*time.Second))
			errs <- err
		}()
		r.waitStarted(t, "gate")
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := Call[int](context.Background(), r.c, "hold", j, WithTimeout(10*time.Second))
				errs <- err
			}()
			r.waitStarted(t, "hold")
		}
		require.Eventually(t, func() bool { _, _, w, _ := r.c.slotSnapshot(); return w == 4 }, 5*time.Second, time.Millisecond)
		// The holder's reply, and the handing on, race Close.
		go r.open()
		if i%2 == 1 {
			time.Sleep(time.Duration(i) * 10 * time.Microsecond) // spread the race, not a wait for readiness
		}
		require.NoError(t, r.c.Close())
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a call did not return after Close", i)
		}
		close(errs)
		for err := range errs {
			if err != nil {
				require.ErrorIs(t, err, ErrClosed, "round %d", i)
			}
		}
		_, holder, waiters, _ := r.c.slotSnapshot()
		require.Nil(t, holder, "round %d", i)
		require.Zero(t, waiters, "round %d", i)
		if r.c.Stats().Pending != 0 {
			leftPending++
		}
	}
	require.Zero(t, leftPending, "rounds that left a call pending after Close")
}
