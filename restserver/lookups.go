package restserver

import (
	"context"
	"sync"
	"sync/atomic"
)

// lookupWorkers is how many backend lookups (offsets, committed offsets)
// of one request run at once.
const lookupWorkers = 8

// lookupEach calls lookup for 0, ..., n-1, several at once on a backend
// whose calls are round trips to a broker, and returns the first error
// (the others are then given a canceled ctx). Each lookup is a round trip
// on Kafka: one after the other, a request naming a few thousand
// partitions took longer than its timeout, however fast the broker. On
// the embedded broker, whose calls never wait, they run one after the
// other.
func (s *Server) lookupEach(ctx context.Context, n int, lookup func(ctx context.Context, i int) error) error {
	if n <= 1 || s.instant() {
		for i := range n {
			if err := lookup(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for range min(lookupWorkers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := lookup(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err() // the caller's ctx ended: not every lookup ran
	}
	return first
}
