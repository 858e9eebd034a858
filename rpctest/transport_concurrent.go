package rpctest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Concurrent producers and two group members, each member polling in one
// goroutine (one with long Polls, one with Polls that keep hitting their
// deadlines) and committing in another: every record is delivered exactly
// once, offsets are unique and in order per partition, and records of one key
// arrive in the order they were produced. Run it with -race.
func testConcurrent(t *testing.T, e *tenv) {
	const (
		producers = 4
		each      = 500 // records per producer
		keys      = 5   // keys per producer
		total     = producers * each
	)
	topic := e.topic()
	g := e.group()
	members := []transport.Consumer{
		mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartLatest}),
		mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartLatest}),
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		produced []transport.Message
		received = make([][]transport.Message, len(members))
		count    atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}

	// Members: Poll in one goroutine, Commit in another.
	for i, c := range members {
		batches := make(chan []transport.Message, 16)
		wg.Go(func() {
			defer close(batches)
			for n := 0; ctx.Err() == nil; n++ {
				// Member 0 long-polls; member 1 polls with deadlines of 1 to
				// 20 ms, so Polls keep ending while records flow.
				pctx, pcancel := ctx, context.CancelFunc(func() {})
				if i == 1 {
					pctx, pcancel = context.WithTimeout(ctx, time.Duration(1+n%20)*time.Millisecond)
				}
				msgs, err := c.Poll(pctx)
				expired := pctx.Err() != nil && ctx.Err() == nil
				pcancel()
				if err != nil && !(expired && errors.Is(err, context.DeadlineExceeded)) {
					if ctx.Err() == nil {
						fail(fmt.Errorf("member %d: Poll: %w", i, err))
					}
					return
				}
				if len(msgs) == 0 {
					continue
				}
				received[i] = append(received[i], msgs...)
				batches <- msgs
				if count.Add(int64(len(msgs))) >= total {
					cancel()
				}
			}
		})
		wg.Go(func() {
			for msgs := range batches {
				cctx, ccancel := context.WithTimeout(t.Context(), waitTimeout)
				err := c.Commit(cctx, msgs...)
				ccancel()
				if err != nil {
					fail(fmt.Errorf("member %d: Commit: %w", i, err))
				}
			}
		})
	}

	// Producers: batches of 1 to 10 records.
	var pwg sync.WaitGroup
	for w := range producers {
		pwg.Go(func() {
			for start, size := 0, 1; start < each; start, size = start+size, size%10+1 {
				var batch []transport.Message
				for j := start; j < min(start+size, each); j++ {
					batch = append(batch, transport.Message{
						Topic: topic,
						Key:   fmt.Sprintf("w%d-k%d", w, j%keys),
						Value: fmt.Appendf(nil, "w%d-k%d-%d", w, j%keys, j),
					})
				}
				// Not ctx: the pollers cancel it once every record is in,
				// which can be before the last produce's response is.
				pctx, pcancel := context.WithTimeout(t.Context(), waitTimeout)
				out, err := e.tr.Produce(pctx, batch...)
				pcancel()
				if err != nil {
					fail(fmt.Errorf("producer %d: Produce: %w", w, err))
					return
				}
				mu.Lock()
				produced = append(produced, out...)
				mu.Unlock()
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("after %d of %d records delivered: %v", count.Load(), total, err)
	}
	require.Len(t, produced, total, "records produced")
	if n := count.Load(); n < total {
		t.Fatalf("members received %d of %d records within %v", n, total, waitTimeout)
	}

	for i, c := range members {
		extra, err := pollWhile(t.Context(), c, quietPeriod, func([]transport.Message) bool { return true })
		require.ErrorIs(t, err, errPollTimeout, "member %d", i)
		received[i] = append(received[i], extra...)
	}
	var all []transport.Message
	for _, r := range received {
		all = append(all, r...)
	}
	requireExactlyOnce(t, produced, all)

	// Per member: offsets in order per partition, and per key the sequence
	// numbers increase (one key, one partition, one reader).
	for i, r := range received {
		requireOffsetOrder(t, r)
		last := make(map[string]int)
		for _, m := range r {
			v := string(m.Value)
			cut := strings.LastIndexByte(v, '-')
			seq, err := strconv.Atoi(v[cut+1:])
			require.NoError(t, err, "value %q", v)
			if prev, ok := last[m.Key]; ok {
				require.Greater(t, seq, prev, "member %d: key %q: record %d delivered after %d", i, m.Key, seq, prev)
			}
			last[m.Key] = seq
		}
	}
}
