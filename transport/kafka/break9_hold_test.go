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

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// replacement describes two server processes with one instance id: old
// serves, then new replaces it while callers keep calling.
type replacement struct {
	oldOpts, newOpts []kafka.Option
	oldSrv, newSrv   []rpc.ServerOption
}

// runReplacement runs r and returns how many requests ran on both the old
// and the new instance, and how many handlers started on the old one after
// the new one served its first.
func runReplacement(t *testing.T, r replacement) (twice int, oldAfterNew int64) {
	t.Helper()
	brokers := cluster(t)
	srvA := newTransport(t, brokers, append([]kafka.Option{kafka.PollWindow(100 * time.Millisecond)}, r.oldOpts...)...)
	srvB := newTransport(t, brokers, append([]kafka.Option{kafka.PollWindow(100 * time.Millisecond)}, r.newOpts...)...)
	cliT := newTransport(t, brokers, kafka.PollWindow(100*time.Millisecond))
	prefix := "b9hold-" + uuid.NewString()[:8]
	topic := prefix + "-echo"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	var runs sync.Map // request id → *atomic.Int64
	var bServing atomic.Bool
	var aAfterB atomic.Int64
	var bStart, bFirst, aLast atomic.Int64 // unix nanos
	var bHandled atomic.Int64
	mk := func(tr *kafka.Transport, isA bool, extra []rpc.ServerOption) func() error {
		opts := append([]rpc.ServerOption{rpc.WithName(prefix + "-srv"), rpc.WithGroup(prefix + "-srv"), rpc.WithLogger(quiet),
			rpc.WithConcurrency(break9Concurrency), rpc.WithInstance("the-one"), rpc.WithSessionTimeout(20 * time.Second)}, extra...)
		s, err := rpc.NewServer(tr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		rpc.Handle(s, topic, func(ctx context.Context, n int) (int, error) {
			if isA && bServing.Load() {
				aAfterB.Add(1)
			}
			if isA {
				aLast.Store(time.Now().UnixNano())
			} else {
				bHandled.Add(1)
				if !bServing.Swap(true) {
					bFirst.Store(time.Now().UnixNano())
				}
			}
			v, _ := runs.LoadOrStore(rpc.RequestID(ctx), new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
			return 2 * n, nil
		})
		return rpctest.Serve(t, s)
	}
	stopA := mk(srvA, true, r.oldSrv)
	cl, err := rpc.NewClient(cliT, rpc.WithName(prefix+"-cli"), rpc.WithLogger(quiet), rpc.WithResend(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// Callers call until the new instance has handled newCalls requests:
	// the load goes on well past its hold.
	const callers, newCalls = 8, 300
	var done, next atomic.Int64
	var stopCalling atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range callers {
		wg.Go(func() {
			for !stopCalling.Load() {
				i := int(next.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := rpc.Call[int](ctx, cl, topic, i)
				cancel()
				if err != nil || out != 2*i {
					select {
					case errs <- fmt.Errorf("call %d: %d, %v", i, out, err):
					default:
					}
				}
				done.Add(1)
				time.Sleep(5 * time.Millisecond) // pacing the load, not a readiness wait
			}
		})
	}
	waitCount(t, &done, 100)
	bStart.Store(time.Now().UnixNano())
	stopB := mk(srvB, false, r.newSrv)
	waitCount(t, &bHandled, newCalls)
	stopCalling.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_ = stopA() // fenced: its Serve ends with ErrFenced
	_ = stopB()
	runs.Range(func(_, v any) bool {
		if v.(*atomic.Int64).Load() > 1 {
			twice++
		}
		return true
	})
	t.Logf("new instance started; its first handler after %v, the old one's last handler after %v",
		time.Duration(bFirst.Load()-bStart.Load()), time.Duration(aLast.Load()-bStart.Load()))
	return twice, aAfterB.Load()
}

const break9Concurrency = 4
