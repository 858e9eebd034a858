package upstash

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// keptFetch returns the fetch of topic left in flight by tl's last Poll
// (nil if none), read under the Poll token as Poll reads it.
func keptFetch(tb testing.TB, tl *tailer, topic string) *tailFetch {
	tb.Helper()
	tl.sem <- struct{}{}
	defer func() { <-tl.sem }()
	return tl.pending[topic]
}

// TestBreak21TailOfSeveralTopicsFetchesEveryTopicThroughoutAPoll: since
// 75679da a Poll of a Tail of several topics may find the fetch another
// Poll left in flight already ended, or see it end while it waits on the
// other topics. It took that answer and fetched the topic no more until
// the Poll's end: a record appended to that topic meanwhile waited for the
// others' long polls (the whole poll window) where before every topic was
// fetched for the whole of every Poll. Here the kept fetch of "quiet" was
// made by a Poll with a short deadline and has ended empty; the record
// produced to "quiet" then must come with the next Poll, not after its
// 3 s window.
// busyQuietTail is a Tail of "busy" and "quiet" on a server of its own,
// with the poll window given, its tailer, and a context for the test.
func busyQuietTail(t *testing.T, window time.Duration) (*Transport, transport.Consumer, *tailer, context.Context) {
	s := startServer(t, serverConfig{})
	tr := newTestTransport(t, s.URL, WithPollWindow(window))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	c, err := tr.Tail(ctx, "busy", "quiet")
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return tr, c, c.(*tailer), ctx
}

func TestBreak21TailOfSeveralTopicsFetchesEveryTopicThroughoutAPoll(t *testing.T) {
	const window = 3 * time.Second
	tr, c, tl, ctx := busyQuietTail(t, window)

	// Poll 1, with a short deadline: "busy" has a record and answers at
	// once; the fetch of "quiet" stays in flight (a 360 ms long poll).
	_, err := tr.Produce(ctx, transport.Message{Topic: "busy", Value: []byte("b")})
	require.NoError(t, err)
	pctx, pcancel := context.WithTimeout(ctx, 400*time.Millisecond)
	msgs, err := c.Poll(pctx)
	pcancel()
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, values(msgs))

	// That fetch ends, empty.
	f := keptFetch(t, tl, "quiet")
	require.NotNil(t, f, "the fetch of the quiet topic was left in flight")
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the quiet topic's fetch did not end within its window")
	}
	require.Empty(t, f.msgs)

	_, err = tr.Produce(ctx, transport.Message{Topic: "quiet", Value: []byte("q")})
	require.NoError(t, err)
	start := time.Now()
	msgs, err = c.Poll(ctx)
	took := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, []string{"q"}, values(msgs), "the record on the quiet topic comes with the Poll running when it was appended")
	assert.Less(t, took, window/2, "the Poll fetched the quiet topic no more after taking its kept (empty) answer")
}

// TestBreak21TailCloseRacingAPollLeavesNoFetch: Close waits for the
// fetches a tail of several topics left in flight; a Poll that had passed
// its closed check when Close began could still start one after Close's
// wait (a WaitGroup Add concurrent with its Wait), left running after
// Close returned. Close and a Poll race here many times; no fetch
// goroutine may outlive Close.
func TestBreak21TailCloseRacingAPollLeavesNoFetch(t *testing.T) {
	s := startServer(t, serverConfig{})
	tr := newTestTransport(t, s.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range 100 {
		c, err := tr.Tail(ctx, "race-a", "race-b")
		require.NoError(t, err)
		pollDone := make(chan struct{})
		go func() {
			defer close(pollDone)
			_, _ = c.Poll(ctx)
		}()
		if i%2 == 0 {
			runtime.Gosched()
		}
		require.NoError(t, c.Close())
		if n := tailFetchGoroutines(); n > 0 {
			t.Fatalf("iteration %d: %d fetch goroutines still running after Close returned", i, n)
		}
		<-pollDone
	}
}

// tailFetchGoroutines counts the goroutines running a tail's fetch.
func tailFetchGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "upstash.(*tailer).fetchWith(")
}

// TestBreak21TailCappedAnswersRotatedAndKeptLoseNothing: answers capped
// mid-partition (a few records each), the partitions named from a
// rotating one (2ef459d) and the fetches of two topics left in flight
// across Polls (75679da): every record of every partition comes exactly
// once, in offset order, while records keep being appended.
func TestBreak21TailCappedAnswersRotatedAndKeptLoseNothing(t *testing.T) {
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithPartitions(3)},
		server: []restserver.Option{restserver.WithFetchMaxBytes(300)}, // about 3 records an answer
	})
	tr := newTestTransport(t, s.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	topics := []string{"cap-a", "cap-b"}
	c, err := tr.Tail(ctx, topics...)
	require.NoError(t, err)
	defer c.Close()

	const perPartition = 40
	produced := make(chan error, 1)
	go func() {
		// In batches, so that backlogs build up and answers are capped.
		for round := range perPartition / 10 {
			var batch []transport.Message
			for _, tp := range topics {
				for p := range int32(3) {
					for i := range 10 {
						batch = append(batch, transport.Message{Topic: tp, Partition: p, ManualPartition: true,
							Value: fmt.Appendf(nil, "%s/%d/%d", tp, p, round*10+i)})
					}
				}
			}
			if _, err := tr.Produce(ctx, batch...); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	type tp struct {
		topic string
		p     int32
	}
	next := map[tp]int{} // next value index expected
	lastOff := map[tp]int64{}
	total, polls := 0, 0
	for total < 2*3*perPartition {
		msgs, err := c.Poll(ctx)
		require.NoError(t, err)
		polls++
		for _, m := range msgs {
			k := tp{m.Topic, m.Partition}
			require.Equal(t, fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, next[k]), string(m.Value),
				"partition %s/%d: a record skipped, repeated or out of order", m.Topic, m.Partition)
			if next[k] > 0 {
				require.Equal(t, lastOff[k]+1, m.Offset)
			}
			lastOff[k] = m.Offset
			next[k]++
			total++
		}
	}
	require.NoError(t, <-produced)
	t.Logf("%d records in %d polls", total, polls)
	// Nothing more comes.
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer pcancel()
	msgs, err := c.Poll(pctx)
	if err == nil {
		require.Empty(t, msgs)
	} else {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
}

// TestBreak21TailKeptAnswerSurvivesAnEndedPollAndGoesWithClose: a fetch
// left in flight whose answer came with records while no Poll ran keeps
// them through a Poll whose ctx had ended (nothing taken, nothing lost);
// the next Poll returns them once. After Close, with an answer kept and a
// fetch in flight, Poll fails with ErrClosed and no fetch goroutine is
// left.
func TestBreak21TailKeptAnswerSurvivesAnEndedPollAndGoesWithClose(t *testing.T) {
	s := startServer(t, serverConfig{})
	tr := newTestTransport(t, s.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := tr.Tail(ctx, "kept-a", "kept-b")
	require.NoError(t, err)
	defer c.Close()
	tl := c.(*tailer)

	_, err = tr.Produce(ctx, transport.Message{Topic: "kept-a", Value: []byte("a1")})
	require.NoError(t, err)
	msgs, err := c.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a1"}, values(msgs))
	f := keptFetch(t, tl, "kept-b")
	require.NotNil(t, f)
	_, err = tr.Produce(ctx, transport.Message{Topic: "kept-b", Value: []byte("b1")})
	require.NoError(t, err)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the kept fetch did not answer the record")
	}

	ended, cancelEnded := context.WithCancel(ctx)
	cancelEnded()
	_, err = c.Poll(ended)
	require.ErrorIs(t, err, context.Canceled)
	msgs, err = c.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"b1"}, values(msgs), "the kept answer, once")

	// "a" answers at once, "b"'s fetch stays in flight (a 5 s long poll).
	_, err = tr.Produce(ctx, transport.Message{Topic: "kept-a", Value: []byte("a2")})
	require.NoError(t, err)
	msgs, err = c.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"a2"}, values(msgs))
	f = keptFetch(t, tl, "kept-b")
	require.NotNil(t, f)
	require.False(t, isDone(f.done), "the fetch of kept-b is in flight")
	start := time.Now()
	require.NoError(t, c.Close())
	require.Less(t, time.Since(start), 2*time.Second, "Close waited for the fetch's long poll")
	require.Zero(t, tailFetchGoroutines(), "fetch goroutines after Close")
	_, err = c.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed)
}

// TestBreak21TailOfSeveralTopicsRefetchesATopicWhoseKeptFetchEndsMidPoll:
// as above, without deadlines: the fetch of "quiet" left in flight by a
// Poll that returned "busy"'s record at once ends (its window over) while
// the next Poll, begun later, waits on "busy"'s new fetch. A record then
// appended to "quiet" must come with that Poll, not after its window.
func TestBreak21TailOfSeveralTopicsRefetchesATopicWhoseKeptFetchEndsMidPoll(t *testing.T) {
	const window = 2 * time.Second
	tr, c, tl, ctx := busyQuietTail(t, window)

	_, err := tr.Produce(ctx, transport.Message{Topic: "busy", Value: []byte("b")})
	require.NoError(t, err)
	msgs, err := c.Poll(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, values(msgs))
	f := keptFetch(t, tl, "quiet")
	require.NotNil(t, f)

	// The next Poll begins half a window later: its fetch of "busy" ends
	// half a window after the kept fetch of "quiet".
	select {
	case <-f.done:
		t.Fatal("the quiet topic's fetch ended before half its window")
	case <-time.After(window / 2):
	}
	type result struct {
		msgs []transport.Message
		err  error
		at   time.Time
	}
	polled := make(chan result, 1)
	go func() {
		msgs, err := c.Poll(ctx)
		polled <- result{msgs, err, time.Now()}
	}()
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the quiet topic's fetch did not end within its window")
	}
	_, err = tr.Produce(ctx, transport.Message{Topic: "quiet", Value: []byte("q")})
	require.NoError(t, err)
	produced := time.Now()
	r := <-polled
	require.NoError(t, r.err)
	assert.Equal(t, []string{"q"}, values(r.msgs), "the record on the quiet topic comes with the Poll running when it was appended")
	assert.Less(t, r.at.Sub(produced), window/4, "the Poll fetched the quiet topic no more once its kept fetch ended")
}
