package upstash

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// handlerRuns counts, per request id, how often a handler ran. It is safe
// for concurrent use.
type handlerRuns struct{ m sync.Map } // request id → *atomic.Int64

// ran counts one run of the handler of ctx's request.
func (h *handlerRuns) ran(ctx context.Context) {
	n, _ := h.m.LoadOrStore(rpc.RequestID(ctx), new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// counts returns the runs of every request together, and how many
// requests ran more than once.
func (h *handlerRuns) counts() (total, twice int64) {
	h.m.Range(func(_, v any) bool {
		n := v.(*atomic.Int64).Load()
		total += n
		if n > 1 {
			twice++
		}
		return true
	})
	return total, twice
}

// callEcho makes callers × each typed calls of "echo" with cli, each
// bounded by timeout, concurrently by caller, and returns how many failed
// or got a reply other than their request; each of those is a t.Errorf.
// done, when not nil, is called after each call.
func callEcho(t *testing.T, cli *rpc.Client, callers, each int, timeout time.Duration, report string, done func()) int64 {
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				cctx, ccancel := context.WithTimeout(context.Background(), timeout)
				req := echoReq{ID: g*each + i, Report: report}
				out, err := rpc.Call[echoReq](cctx, cli, "echo", req)
				ccancel()
				if err == nil && out != req {
					err = errors.New("wrong reply")
				}
				if err != nil {
					failed.Add(1)
					t.Errorf("call %d: %v", req.ID, err)
				}
				if done != nil {
					done()
				}
			}
		})
	}
	wg.Wait()
	return failed.Load()
}
