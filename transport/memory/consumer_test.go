package memory

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

type pollResult struct {
	msgs []transport.Message
	err  error
}

// blockedPoll starts c.Poll(ctx) in a goroutine and returns once it is
// blocked waiting for records.
func (f *fixture) blockedPoll(t *testing.T, ctx context.Context, c *Consumer) <-chan pollResult {
	t.Helper()
	blocked := f.blockedSignal(c)
	done := make(chan pollResult, 1)
	go func() {
		msgs, err := c.Poll(ctx)
		done <- pollResult{msgs, err}
	}()
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("Poll did not block")
	}
	f.whenBlocked(c, nil)
	return done
}

func await(t *testing.T, done <-chan pollResult, what string) pollResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(wait):
		t.Fatalf("Poll did not return after %s", what)
		return pollResult{}
	}
}

func TestPollWakesOnProduce(t *testing.T) {
	f := newFixture(t, WithTopic("t", 3))
	member := f.join(t, sub("g", "a", transport.StartLatest, "t"))
	tail, err := f.Tail(context.Background(), "t")
	require.NoError(t, err)
	defer tail.Close()

	for i := range 3 { // each partition, several times
		memberDone := f.blockedPoll(t, context.Background(), member)
		tailDone := f.blockedPoll(t, context.Background(), tail.(*tailConsumer).Consumer)
		out := f.produceTo(t, "t", int32(i), "r", 1)
		for _, done := range []<-chan pollResult{memberDone, tailDone} {
			r := await(t, done, "a produce")
			require.NoError(t, r.err)
			assert.Equal(t, out, r.msgs)
		}
	}
}

func TestPollReturnsOnContextEnd(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	c := f.join(t, sub("g", "a", transport.StartLatest, "t"))

	ctx, cancel := context.WithCancel(context.Background())
	done := f.blockedPoll(t, ctx, c)
	cancel()
	r := await(t, done, "cancel")
	require.ErrorIs(t, r.err, context.Canceled)
	assert.Empty(t, r.msgs)

	// An ended ctx wins over available records.
	f.produceTo(t, "t", 0, "r", 1)
	_, err := c.Poll(ctx)
	require.ErrorIs(t, err, context.Canceled)

	dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer dcancel()
	<-dctx.Done()
	_, err = c.Poll(dctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []string{"r-0"}, values(pollN(t, c, 1)), "nothing was lost")
}

func TestPollWakesOnRebalance(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	require.Empty(t, b.Assignment())
	f.produceTo(t, "t", 0, "r", 2)

	done := f.blockedPoll(t, context.Background(), b)
	require.NoError(t, a.Close())
	r := await(t, done, "the owner closed")
	require.NoError(t, r.err)
	assert.Equal(t, []string{"r-0", "r-1"}, values(r.msgs))
}

func TestCloseWakesPoll(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	c := f.join(t, sub("g", "a", transport.StartLatest, "t"))
	done := f.blockedPoll(t, context.Background(), c)
	require.NoError(t, c.Close())
	r := await(t, done, "Close")
	require.ErrorIs(t, r.err, transport.ErrClosed)
	assert.EqualError(t, r.err, "memory: consumer is closed: transport: closed")
	require.NoError(t, c.Close())

	tail, err := f.Tail(context.Background(), "t")
	require.NoError(t, err)
	tc := tail.(*tailConsumer).Consumer
	done = f.blockedPoll(t, context.Background(), tc)
	require.NoError(t, tail.Close())
	require.ErrorIs(t, await(t, done, "Close").err, transport.ErrClosed)
	require.NoError(t, tail.Close())
	_, err = tail.Poll(context.Background())
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, tail.Commit(context.Background()), transport.ErrClosed)

	p := f.lookup("t").parts[0]
	p.mu.Lock()
	assert.Empty(t, p.watchers, "closed consumers stop watching")
	p.mu.Unlock()
}

func TestBrokerCloseWakesEveryone(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	ctx := context.Background()
	member, err := f.Broker.join(ctx, sub("g", "a", transport.StartLatest, "t"))
	require.NoError(t, err)
	tail, err := f.Tail(ctx, "t")
	require.NoError(t, err)
	memberDone := f.blockedPoll(t, ctx, member)
	tailDone := f.blockedPoll(t, ctx, tail.(*tailConsumer).Consumer)
	fetchDone := make(chan error, 1)
	go func() {
		_, err := f.Fetch(ctx, "t", 1, 0, 0)
		fetchDone <- err
	}()

	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "idempotent")
	require.ErrorIs(t, await(t, memberDone, "broker Close").err, transport.ErrClosed)
	require.ErrorIs(t, await(t, tailDone, "broker Close").err, transport.ErrClosed)
	select {
	case err := <-fetchDone:
		require.ErrorIs(t, err, transport.ErrClosed)
	case <-time.After(wait):
		t.Fatal("Fetch did not return after broker Close")
	}

	// Every later call fails with ErrClosed.
	_, err = f.Produce(ctx, transport.Message{Topic: "t"})
	require.ErrorIs(t, err, transport.ErrClosed)
	assert.EqualError(t, err, "memory: broker is closed: transport: closed")
	_, err = f.Subscribe(ctx, sub("g", "b", transport.StartLatest, "t"))
	require.ErrorIs(t, err, transport.ErrClosed)
	_, err = f.Tail(ctx, "t")
	require.ErrorIs(t, err, transport.ErrClosed)
	_, err = f.Fetch(ctx, "t", 0, 0, 0)
	require.ErrorIs(t, err, transport.ErrClosed)
	_, _, err = f.Offsets("t", 0)
	require.ErrorIs(t, err, transport.ErrClosed)
	_, err = f.OffsetForTime("t", 0, time.Now())
	require.ErrorIs(t, err, transport.ErrClosed)
	_, err = f.Committed("g", "t", 0)
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, f.CreateTopic("new", 1), transport.ErrClosed)
	_, err = member.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, member.Commit(ctx, transport.Message{Topic: "t"}), transport.ErrClosed)
	assert.Empty(t, f.Topics())
	assert.Nil(t, f.Groups())
	require.NoError(t, member.Close())
	require.NoError(t, tail.Close())
}

func TestTail(t *testing.T) {
	f := newFixture(t, WithTopic("a", 2), WithTopic("b", 1))
	ctx := context.Background()
	f.produceTo(t, "a", 0, "before", 2)
	f.produceTo(t, "b", 0, "before", 1)

	tail, err := f.Tail(ctx, "b", "a", "a")
	require.NoError(t, err)
	defer tail.Close()
	tc := tail.(*tailConsumer).Consumer
	assert.Equal(t, map[string][]int32{"a": {0, 1}, "b": {0}}, tc.Assignment())
	assert.Empty(t, tc.Group())
	assert.Empty(t, tc.Instance())
	f.pollEmpty(t, tc)

	f.produceTo(t, "a", 1, "a1", 2)
	f.produceTo(t, "b", 0, "b0", 1)
	f.produceTo(t, "a", 0, "a0", 1)
	got := pollN(t, tail, 4)
	assert.ElementsMatch(t, []string{"a1-0", "a1-1", "b0-0", "a0-0"}, values(got))
	require.NoError(t, tail.Commit(ctx, got...), "Commit is a no-op")
	require.NoError(t, tc.CommitOffsets(ctx, transport.Offset{Topic: "a", Partition: 0, Offset: 1}))
	require.NoError(t, tc.CommitPositions(ctx))
	assert.Nil(t, f.Groups(), "no group was made")

	// Two tails are independent.
	other, err := f.Tail(ctx, "a")
	require.NoError(t, err)
	defer other.Close()
	f.produceTo(t, "a", 0, "both", 1)
	assert.Equal(t, []string{"both-0"}, values(pollN(t, tail, 1)))
	assert.Equal(t, []string{"both-0"}, values(pollN(t, other, 1)))
}

func TestTailErrors(t *testing.T) {
	f := newFixture(t, WithAutoCreate(false), WithTopic("a", 1))
	ctx := context.Background()
	_, err := f.Tail(ctx)
	require.ErrorIs(t, err, transport.ErrInvalid)
	_, err = f.Tail(ctx, "a", "nope")
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	assert.EqualError(t, err, `memory: tail "nope": transport: unknown topic`)
	_, err = f.Tail(ctx, "a", "")
	require.ErrorIs(t, err, transport.ErrInvalid)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = f.Tail(cctx, "a")
	require.ErrorIs(t, err, context.Canceled)

	auto := newFixture(t, WithPartitions(2))
	tail, err := auto.Tail(ctx, "created")
	require.NoError(t, err)
	defer tail.Close()
	assert.Equal(t, map[string]int32{"created": 2}, auto.Topics())
}
