package rpc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A reply consumer that is fenced or closed under the client: nobody can
// read, so the calls pending (holding, waiting, passive) and the calls made
// after end at their deadlines with the deadline's error, none later, none
// with another error; Close still returns promptly, and nothing is left
// running (goleak).
func TestBreak8SlotConsumerStopped(t *testing.T) {
	for _, stop := range []error{transport.ErrFenced, transport.ErrClosed} {
		t.Run(stop.Error(), func(t *testing.T) {
			var ct *chaosTransport
			r := newSlotRigOn(t, false, func(tr *slotTransport) transport.Transport { ct = newChaos(tr); return ct })
			err := fmt.Errorf("test: reply consumer: %w", stop)
			ct.cons.dead.Store(&err)
			var wg sync.WaitGroup
			for i := range 24 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					opts := []CallOption{WithTimeout(time.Duration(50+10*i) * time.Millisecond)}
					began := time.Now()
					_, err := Call[int](context.Background(), r.c, "echo", i, opts...)
					assert.Equal(t, CodeDeadlineExceeded, CodeOf(err), "call %d: %v", i, err)
					assert.Less(t, time.Since(began), time.Duration(50+10*i)*time.Millisecond+3*time.Second, "call %d overran its deadline", i)
				}()
			}
			wg.Wait()
			require.Eventually(t, func() bool { return r.c.Stats().Pending == 0 }, 5*time.Second, time.Millisecond)
			// Later calls too.
			_, err2 := Call[int](context.Background(), r.c, "echo", 1, WithTimeout(30*time.Millisecond))
			require.Equal(t, CodeDeadlineExceeded, CodeOf(err2), "%v", err2)
			closed := make(chan error, 1)
			go func() { closed <- r.c.Close() }()
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
		})
	}
}
