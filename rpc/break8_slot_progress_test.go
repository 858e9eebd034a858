package rpc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Progress notices under a storm on the reading slot (many readers, the
// slot changing hands all the time, slow and failing polls, tiny
// deadlines): each call gets its own notices, each once, in order, and
// none after it returned.
func TestBreak8SlotProgressStorm(t *testing.T) {
	for _, carry := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "carrying"}[carry], func(t *testing.T) {
			br, err := memory.New(memory.WithPartitions(4))
			require.NoError(t, err)
			defer br.Close()
			s, err := NewServer(br, WithName("srv"), WithConcurrency(64), slotQuiet)
			require.NoError(t, err)
			Handle(s, "steps", func(ctx context.Context, n int) (int, error) {
				for i := range n % 8 {
					if err := Progress(ctx, fmt.Sprintf("%d.%d", n, i)); err != nil {
						return 0, err
					}
				}
				return n, nil
			})
			sctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- s.Serve(sctx) }()
			defer func() { cancel(); require.NoError(t, <-served) }()
			ct := newChaos(&slotTransport{Transport: br, br: br, carry: carry})
			c, err := NewClient(ct, WithName("cli"), slotQuiet)
			require.NoError(t, err)
			defer c.Close()
			ct.rates.Store(&chaosRates{pollFail: 0.01, pollSlow: 0.1})

			const workers, each = 32, 60
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						n := (w*each+i)*8 + rand.IntN(8)
						timeout := 10 * time.Second
						if rand.IntN(3) == 0 {
							timeout = time.Microsecond + time.Duration(rand.Int64N(int64(5*time.Millisecond)))
						}
						var mu sync.Mutex
						var got []string
						returned := false
						_, err := Call[int](context.Background(), c, "steps", n, WithTimeout(timeout), WithProgress(func(r *Reply) {
							mu.Lock()
							defer mu.Unlock()
							assert.False(t, returned, "call %d: a notice after the call returned", n)
							got = append(got, string(r.Value))
						}))
						mu.Lock()
						returned = err == nil // a call that gave up may still see a notice being delivered
						for k, v := range got {
							assert.Equal(t, fmt.Sprintf("%q", fmt.Sprintf("%d.%d", n, k)), v, "call %d: notice %d", n, k)
						}
						if err == nil {
							assert.Len(t, got, n%8, "call %d: notices", n)
						} else {
							assert.Less(t, timeout, time.Second, "call %d: %v", n, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			require.Zero(t, ct.cons.overlap.Load())
			require.Zero(t, c.Stats().Foreign)
		})
	}
}
