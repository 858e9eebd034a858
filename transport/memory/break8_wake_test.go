package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Two Polls blocked on one consumer, and one produce of more records than
// one Poll may return (WithMaxPollRecords): the first Poll woken takes its
// share, the second must not sleep past the rest, which are there to read.
func TestBreak8ConcurrentPollsShareABacklogLargerThanOnePoll(t *testing.T) {
	for _, tail := range []bool{false, true} {
		t.Run(map[bool]string{false: "member", true: "tail"}[tail], func(t *testing.T) {
			b, err := New(WithPartitions(1), WithMaxPollRecords(4))
			require.NoError(t, err)
			t.Cleanup(func() { b.Close() })
			require.NoError(t, b.CreateTopic("t", 1))
			ctx := context.Background()
			var c transport.Consumer
			if tail {
				c, err = b.Tail(ctx, "t")
			} else {
				c, err = b.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"t"}})
			}
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			blocked := make(chan struct{}, 2)
			b.onBlock = func(*Consumer) {
				select { // a Poll blocks again when woken for nothing: told once is enough
				case blocked <- struct{}{}:
				default:
				}
			}
			got := make(chan int, 2)
			pctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			for range 2 {
				go func() {
					msgs, _ := c.Poll(pctx)
					got <- len(msgs)
				}()
			}
			for range 2 {
				select {
				case <-blocked:
				case <-time.After(wait):
					t.Fatal("Poll did not block")
				}
			}
			var msgs []transport.Message
			for i := range 8 {
				msgs = append(msgs, transport.Message{Topic: "t", Value: []byte{byte(i)}})
			}
			_, err = b.Produce(ctx, msgs...)
			require.NoError(t, err)
			total := 0
			for range 2 {
				select {
				case n := <-got:
					require.Positive(t, n, "a Poll slept past records there to read, until its deadline")
					total += n
				case <-time.After(2 * wait):
					t.Fatal("a Poll did not return")
				}
			}
			require.Equal(t, 8, total)
		})
	}
}

// A record appended while a Poll is on its way to block is never slept
// past: many rounds of one Poll against one produce racing it, over several
// partitions, members and tails, with rebalances (a second member joining
// and leaving) in between for members.
func TestBreak8NoLostWakeUpUnderRacingAppends(t *testing.T) {
	b, err := New(WithPartitions(4))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, b.CreateTopic("t", 4))
	ctx := context.Background()
	member, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "a", Topics: []string{"t"}})
	require.NoError(t, err)
	t.Cleanup(func() { member.Close() })
	tail, err := b.Tail(ctx, "t")
	require.NoError(t, err)
	t.Cleanup(func() { tail.Close() })

	rounds := 400
	if testing.Short() {
		rounds = 100
	}
	var other transport.Consumer
	defer func() {
		if other != nil {
			other.Close()
		}
	}()
	for i := range rounds {
		if i%50 == 25 { // a second member joins (or leaves): the member's partitions move
			if other == nil {
				other, err = b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "b", Topics: []string{"t"}})
				require.NoError(t, err)
			} else {
				require.NoError(t, other.Close())
				other = nil
			}
		}
		part := int32(rand.IntN(4))
		if other != nil {
			part = int32(rand.IntN(2)) // the member ("a" sorts first) owns 0 and 1
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		res := make(chan error, 2)
		for _, c := range []transport.Consumer{member, tail} {
			go func() {
				msgs, err := c.Poll(pctx)
				if err == nil && c == member {
					err = c.Commit(pctx, msgs...) // a partition that comes back resumes after it
				}
				if err == nil && len(msgs) != 1 {
					err = fmt.Errorf("got %d records, want 1", len(msgs))
				}
				res <- err
			}()
		}
		if rand.IntN(2) == 0 {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // a race window, not a readiness wait
		}
		_, err := b.Produce(ctx, transport.Message{Topic: "t", Partition: part, ManualPartition: true, Value: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
		for range 2 {
			require.NoError(t, <-res, "round %d: Poll slept past an appended record", i)
		}
		cancel()
	}
}

// Many consumers, each with Polls blocked on it, and every way a blocked
// Poll must end racing them: Close of the consumer, fencing by a twin, and
// the broker's Close last. Every Poll returns, with the stop's error.
func TestBreak8ThousandsOfBlockedPollsAllEnd(t *testing.T) {
	b, err := New(WithPartitions(2))
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic("t", 2))
	ctx := context.Background()
	const consumers, pollsEach = 300, 4
	type polled struct {
		kind string
		err  error
	}
	res := make(chan polled, consumers*(pollsEach+1))
	var wg sync.WaitGroup
	var twins []transport.Consumer
	for i := range consumers {
		var c transport.Consumer
		kind := []string{"closed", "fenced", "broker", "tail"}[i%4]
		if kind == "tail" {
			c, err = b.Tail(ctx, "t")
		} else {
			c, err = b.Subscribe(ctx, transport.Subscription{Group: fmt.Sprint("g", i), Instance: "i", Topics: []string{"t"}})
		}
		require.NoError(t, err)
		for range pollsEach {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Poll(ctx)
				res <- polled{kind, err}
			}()
		}
		switch kind {
		case "closed":
			go c.Close() // racing the Polls' start
		case "fenced":
			go func() {
				twin, err := b.Subscribe(ctx, transport.Subscription{Group: fmt.Sprint("g", i), Instance: "i", Topics: []string{"t"}})
				if err == nil {
					res <- polled{"twin", nil}
					twin.Close()
				} else {
					res <- polled{"twin", err}
				}
			}()
		}
		twins = append(twins, c)
	}
	time.Sleep(10 * time.Millisecond) // a window for Polls to block, not a readiness wait
	require.NoError(t, b.Close())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * wait):
		ended := map[string]int{}
		for len(res) > 0 {
			r := <-res
			ended[r.kind]++
		}
		t.Fatalf("some blocked Polls never returned; ended (of %d each kind, %d Polls per consumer): %v", consumers/4, pollsEach, ended)
	}
	close(res)
	for r := range res {
		if r.kind == "twin" {
			if r.err != nil {
				require.ErrorIs(t, r.err, transport.ErrClosed, "a twin's Subscribe may only lose to the broker's Close")
			}
			continue
		}
		require.Error(t, r.err, "%s: a Poll returned without records or error", r.kind)
		ok := errors.Is(r.err, transport.ErrClosed) || (r.kind == "fenced" && errors.Is(r.err, transport.ErrFenced))
		require.True(t, ok, "%s: %v", r.kind, r.err)
	}
	for _, c := range twins {
		c.Close()
	}
}

// A thousand Polls blocked on one consumer: records appended in bursts
// are all read, each once, by some Poll (a Poll that leaves records behind
// passes the wake-up on), and fencing then ends every Poll still blocked.
func TestBreak8AThousandPollsOnOneConsumer(t *testing.T) {
	b, err := New(WithPartitions(3), WithMaxPollRecords(3))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, b.CreateTopic("t", 3))
	ctx := context.Background()
	c, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "i", Topics: []string{"t"}})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	const polls, records = 1000, 600
	type polled struct {
		msgs []transport.Message
		err  error
	}
	res := make(chan polled, polls)
	var blocked atomic.Int64
	b.onBlock = func(*Consumer) { blocked.Add(1) }
	for range polls {
		go func() {
			msgs, err := c.Poll(ctx)
			res <- polled{msgs, err}
		}()
	}
	require.Eventually(t, func() bool { return blocked.Load() >= polls }, wait, time.Millisecond, "every Poll blocked")
	for i := 0; i < records; i += 20 {
		var batch []transport.Message
		for j := i; j < i+20; j++ {
			// One partition per produce: one append, one wake-up, for 20
			// records that take seven Polls.
			batch = append(batch, transport.Message{Topic: "t", Partition: int32(i/20) % 3, ManualPartition: true, Value: []byte(fmt.Sprint(j))})
		}
		_, err := b.Produce(ctx, batch...)
		require.NoError(t, err)
	}
	seen := make(map[string]bool)
	got := 0
	for len(seen) < records {
		select {
		case r := <-res:
			require.NoError(t, r.err)
			got++
			for _, m := range r.msgs {
				require.False(t, seen[string(m.Value)], "record %s read twice", m.Value)
				seen[string(m.Value)] = true
			}
		case <-time.After(wait):
			t.Fatalf("%d of %d records read: the rest were slept past", len(seen), records)
		}
	}
	twin, err := b.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "i", Topics: []string{"t"}})
	require.NoError(t, err)
	t.Cleanup(func() { twin.Close() })
	for ; got < polls; got++ {
		select {
		case r := <-res:
			require.ErrorIs(t, r.err, transport.ErrFenced)
		case <-time.After(wait):
			t.Fatalf("%d of %d Polls returned after the fencing", got, polls)
		}
	}
}
