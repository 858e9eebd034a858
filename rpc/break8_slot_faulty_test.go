package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The reading slot under rpctest.Faulty on the client's side (its reply
// reader carries requests: the embedded broker's Tail, which Faulty keeps a
// CarryingPoller, without ProduceOwned): failed, slow, duplicated and
// reordered polls, failed and slow produces, with tiny deadlines, cancels
// and, in the second run, Close mid-storm. Each call ends with its own
// reply or its own error, in time.
func TestBreak8SlotFaultyStorm(t *testing.T) {
	for _, closeMid := range []bool{false, true} {
		t.Run(map[bool]string{false: "run", true: "close"}[closeMid], func(t *testing.T) {
			br, err := memory.New(memory.WithPartitions(4))
			require.NoError(t, err)
			t.Cleanup(func() { br.Close() }) // after the server stops (serveT's cleanup)
			quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))
			s, err := rpc.NewServer(br, rpc.WithName("srv"), rpc.WithConcurrency(64), quiet)
			require.NoError(t, err)
			rpc.Handle(s, "echo", func(ctx context.Context, n int) (int, error) { return n, nil })
			serveT(t, s)
			ft := rpctest.Faulty(br, rpctest.Faults{Seed: uint64(time.Now().UnixNano()), PollFail: 0.02, PollDelay: 0.1, PollDuplicate: 0.02,
				PollReorder: 0.2, ProduceFail: 0.02, ProduceDelay: 0.05, MaxDelay: 2 * time.Millisecond})
			c, err := rpc.NewClient(ft, rpc.WithName("cli"), quiet)
			require.NoError(t, err)
			defer c.Close()

			const workers, each = 32, 60
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						n := w*each + i
						timeout, cancelAt := 10*time.Second, time.Duration(0)
						switch rand.IntN(10) {
						case 0, 1, 2:
							timeout = time.Microsecond + time.Duration(rand.Int64N(int64(5*time.Millisecond)))
						case 3, 4:
							cancelAt = time.Duration(rand.Int64N(int64(3 * time.Millisecond)))
						}
						ctx, cancel := context.WithCancel(context.Background())
						if cancelAt > 0 {
							tm := time.AfterFunc(cancelAt, cancel)
							defer tm.Stop()
						}
						began := time.Now()
						got, err := rpc.Call[int](ctx, c, "echo", n, rpc.WithTimeout(timeout))
						took := time.Since(began)
						cancel()
						short := timeout < time.Second || cancelAt > 0
						switch {
						case err == nil:
							assert.Equal(t, n, got, "another call's reply")
						case errors.Is(err, rpc.ErrClosed):
							assert.True(t, closeMid, "call %d: %v", n, err)
						case short && (rpc.CodeOf(err) == rpc.CodeDeadlineExceeded || rpc.CodeOf(err) == rpc.CodeCanceled || errors.Is(err, rpctest.ErrInjected)):
							assert.Less(t, took, timeout+3*time.Second, "call %d overran", n)
						default:
							assert.Fail(t, "unexpected error", "call %d (timeout %v, cancel %v): %v", n, timeout, cancelAt, err)
						}
					}
				}()
			}
			if closeMid {
				time.Sleep(30 * time.Millisecond) // the storm's own pace, not a wait for readiness
				closed := make(chan error, 1)
				go func() { closed <- c.Close() }()
				select {
				case err := <-closed:
					require.NoError(t, err)
				case <-time.After(5 * time.Second):
					t.Fatal("Close did not return mid-storm")
				}
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("storm still running after 60s")
			}
			require.Eventually(t, func() bool { return c.Stats().Pending == 0 }, 5*time.Second, time.Millisecond)
			st := ft.Stats()
			t.Logf("faults: %+v", st)
		})
	}
}
