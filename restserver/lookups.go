package restserver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/kafkarpc/kafkarpc/transport"
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

// committedOf returns group's committed offsets of tps, out[i] that of
// tps[i] (-1 for none): in one call on a [CommittedLister] backend, else
// with a Committed for each, several at once (lookupEach). It fails as a
// whole when one lookup fails.
func (s *Server) committedOf(ctx context.Context, group string, tps []transport.TopicPartition) ([]int64, error) {
	if len(tps) == 0 {
		return []int64{}, nil
	}
	if l, ok := s.backend.(CommittedLister); ok {
		out, err := l.ListCommitted(ctx, group, tps)
		if err == nil && len(out) != len(tps) {
			err = fmt.Errorf("restserver: the backend's ListCommitted answered %d offsets for %d partitions", len(out), len(tps))
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	out := make([]int64, len(tps))
	err := s.lookupEach(ctx, len(tps), func(ctx context.Context, i int) (err error) {
		out[i], err = s.backend.Committed(ctx, group, tps[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// offsetsOf returns the first retained offsets of tps (earliest) or their
// next offsets, out[i] that of tps[i]: in one call on an [OffsetsLister]
// backend, else with an Offsets for each, several at once (lookupEach). It
// fails as a whole when one lookup fails.
func (s *Server) offsetsOf(ctx context.Context, tps []transport.TopicPartition, earliest bool) ([]int64, error) {
	if len(tps) == 0 {
		return []int64{}, nil
	}
	if l, ok := s.backend.(OffsetsLister); ok {
		return listOffsets(ctx, l, tps, earliest)
	}
	// Without a lister, each partition's Offsets answers both bounds.
	first, next, err := s.boundsOf(ctx, tps)
	if earliest {
		return first, err
	}
	return next, err
}

// boundsOf returns the first retained and the next offsets of tps, as
// offsetsOf does (on an [OffsetsLister], its two calls run at once).
func (s *Server) boundsOf(ctx context.Context, tps []transport.TopicPartition) (first, next []int64, err error) {
	if len(tps) == 0 {
		return []int64{}, []int64{}, nil
	}
	if l, ok := s.backend.(OffsetsLister); ok {
		var wg sync.WaitGroup
		var errFirst error
		wg.Go(func() { first, errFirst = listOffsets(ctx, l, tps, true) })
		next, err = listOffsets(ctx, l, tps, false)
		wg.Wait()
		if err == nil {
			err = errFirst
		}
		if err != nil {
			return nil, nil, err
		}
		return first, next, nil
	}
	first, next = make([]int64, len(tps)), make([]int64, len(tps))
	err = s.lookupEach(ctx, len(tps), func(ctx context.Context, i int) (err error) {
		first[i], next[i], err = s.backend.Offsets(ctx, tps[i])
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return first, next, nil
}

// listOffsets is l.ListOffsets, checking the length of its answer.
func listOffsets(ctx context.Context, l OffsetsLister, tps []transport.TopicPartition, earliest bool) ([]int64, error) {
	out, err := l.ListOffsets(ctx, tps, earliest)
	if err == nil && len(out) != len(tps) {
		err = fmt.Errorf("restserver: the backend's ListOffsets answered %d offsets for %d partitions", len(out), len(tps))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
