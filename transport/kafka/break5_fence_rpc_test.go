package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// BUG (fixed; Commit now fences on FENCED_INSTANCE_ID): two live server
// processes with one instance id: the second replaces the
// first. The first learns of it only at its next heartbeat; until then it
// keeps polling and dispatching the records it fetches, while the new one
// reads the same partitions from the committed offset. Requests started on
// the old process after the replacement are run twice. Beyond the declared
// gap (only the old owner's in-flight handlers, at most its concurrency,
// may run again), the window here is a whole heartbeat interval of new
// dispatches. The new instance therefore holds its records back for one
// heartbeat interval after its first assignment (consumer.holdUntil):
// without the hold, and with a dedup sync that does not pause between
// reads (18d9f3e), 16-17 requests ran twice in 2 runs of 3.
func TestBreak5FencedServerStopsDispatching(t *testing.T) {
	brokers := cluster(t)
	// A slow heartbeat (the default is 1 s) makes the window visible.
	srvA := newTransport(t, brokers, kafka.PollWindow(100*time.Millisecond), kafka.HeartbeatInterval(3*time.Second))
	srvB := newTransport(t, brokers, kafka.PollWindow(100*time.Millisecond))
	cliT := newTransport(t, brokers, kafka.PollWindow(100*time.Millisecond))
	prefix := "b5fence-" + uuid.NewString()[:8]
	topic := prefix + "-echo"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const concurrency = 4

	var runs sync.Map // request id → *atomic.Int64
	var bServing atomic.Bool
	var aAfterB atomic.Int64
	mk := func(tr *kafka.Transport, isA bool) func() error {
		s, err := rpc.NewServer(tr, rpc.WithName(prefix+"-srv"), rpc.WithGroup(prefix+"-srv"), rpc.WithLogger(quiet),
			rpc.WithConcurrency(concurrency), rpc.WithInstance("the-one"), rpc.WithSessionTimeout(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) {
			if isA && bServing.Load() {
				aAfterB.Add(1)
			}
			if !isA {
				bServing.Store(true)
			}
			v, _ := runs.LoadOrStore(rpc.RequestID(ctx), new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
			return 2 * n, nil
		})
		return rpctest.Serve(t, s)
	}
	stopA := mk(srvA, true)
	cl, err := rpc.NewClient(cliT, rpc.WithName(prefix+"-cli"), rpc.WithLogger(quiet), rpc.WithResend(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	const calls, callers = 300, 8
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for w := range callers {
		wg.Go(func() {
			for i := w; i < calls; i += callers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := rpc.Call[int](ctx, cl, topic, i)
				cancel()
				if err != nil || out != 2*i {
					errs <- fmt.Errorf("call %d: %d, %v", i, out, err)
				}
				done.Add(1)
				time.Sleep(5 * time.Millisecond) // pacing the load, not a readiness wait
			}
		})
	}
	waitCount(t, &done, calls/4)
	stopB := mk(srvB, false)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_ = stopA() // fenced: its Serve ends with ErrFenced
	_ = stopB()
	twice := 0
	runs.Range(func(_, v any) bool {
		if v.(*atomic.Int64).Load() > 1 {
			twice++
		}
		return true
	})
	t.Logf("%d requests run twice; %d handlers started on the replaced process after the new one served", twice, aAfterB.Load())
	assert.LessOrEqual(t, twice, concurrency, "requests run by both the replaced and the new instance")
}
