package rpc

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// stallTransport holds back the next produce, once armed, until release
// is closed or its context ends (a slow REST round trip, or a produce
// retrying transient errors).
type stallTransport struct {
	*slotTransport
	armed   atomic.Bool
	stalled chan struct{} // closed when a produce is held back
	release chan struct{}
}

func (s *stallTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.slotTransport.Produce(ctx, msgs...)
}

// A call whose request is slow to go out must not keep the reading slot
// meanwhile: the calls sent after it are answered while it still sends.
// (Found by break8: a call that found the slot free took it before
// producing, and with no carrying reply consumer produced with the slot
// held; a waiter handed the slot while producing did the same. Nobody read
// the reply topic until that produce ended, and the other calls failed at
// their deadlines with their replies on the topic.)
func TestBreak8SlotNotHeldWhileSending(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			var st *stallTransport
			r := newSlotRigOn(t, carry, func(tr *slotTransport) transport.Transport {
				st = &stallTransport{slotTransport: tr, stalled: make(chan struct{}), release: make(chan struct{})}
				return st
			})
			if carry {
				// Too many pending to carry: the slow call produces on its own.
				for range carryMaxPending {
					done := make(chan error, 1)
					go func() {
						_, err := Call[int](context.Background(), r.c, "hold", 0, WithTimeout(10*time.Second))
						done <- err
					}()
					r.waitStarted(t, "hold")
					t.Cleanup(func() { r.open(); <-done })
				}
			}
			st.armed.Store(true)
			slow := make(chan error, 1)
			go func() {
				_, err := Call[int](context.Background(), r.c, "echo", 1, WithTimeout(10*time.Second))
				slow <- err
			}()
			select {
			case <-st.stalled:
			case <-time.After(5 * time.Second):
				t.Fatal("the slow produce never started")
			}
			for i := range 5 {
				start := time.Now()
				got, err := Call[int](context.Background(), r.c, "echo", 100+i, WithTimeout(2*time.Second))
				require.NoError(t, err, "call %d, %v after it began, while another call's request was still being sent", i, time.Since(start))
				require.Equal(t, 100+i, got)
			}
			close(st.release)
			select {
			case err := <-slow:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("the slow call never returned")
			}
		})
	}
}

// slotTaken is slotSnapshot once a call holds the slot (waiting at most 5
// s): a call that produces its request on its own takes the slot only
// once it is sent, which may be after its handler started.
func (c *Client) slotTaken(t *testing.T) (state slotState, holder *pendingCall, waiters, passive int) {
	t.Helper()
	require.Eventually(t, func() bool { s, _, _, _ := c.slotSnapshot(); return s == slotCaller }, 5*time.Second, 10*time.Microsecond)
	return c.slotSnapshot()
}
