package memory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

func sub(group, instance string, start transport.Start, topics ...string) transport.Subscription {
	return transport.Subscription{Group: group, Instance: instance, Topics: topics, Start: start}
}

func TestJoinValidation(t *testing.T) {
	f := newFixture(t, WithAutoCreate(false), WithTopic("t", 1))
	ctx := context.Background()
	tests := []struct {
		name string
		s    transport.Subscription
		want error
	}{
		{"no group", transport.Subscription{Topics: []string{"t"}}, transport.ErrInvalid},
		{"no topics", transport.Subscription{Group: "g"}, transport.ErrInvalid},
		{"bad start", transport.Subscription{Group: "g", Topics: []string{"t"}, Start: 7}, transport.ErrInvalid},
		{"negative session", transport.Subscription{Group: "g", Topics: []string{"t"}, SessionTimeout: -1}, transport.ErrInvalid},
		{"bad topic", transport.Subscription{Group: "g", Topics: []string{"t", "a b"}}, transport.ErrInvalid},
		{"unknown topic", transport.Subscription{Group: "g", Topics: []string{"t", "nope"}}, transport.ErrUnknownTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.Subscribe(ctx, tt.s)
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, c, "no typed nil in the interface")
		})
	}
	_, err := f.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"nope"}})
	assert.EqualError(t, err, `memory: subscribe to "nope": transport: unknown topic`)
	assert.Empty(t, f.Groups(), "failed joins leave no member")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = f.Subscribe(cctx, transport.Subscription{Group: "g", Topics: []string{"t"}})
	require.ErrorIs(t, err, context.Canceled)
}

func TestJoinDefaults(t *testing.T) {
	f := newFixture(t, WithSessionTimeout(7*time.Second))
	c := f.join(t, transport.Subscription{Group: "g", Topics: []string{"b", "a", "b"}})
	assert.Equal(t, "g", c.Group())
	assert.NotEmpty(t, c.Instance(), "an id is generated")
	assert.Equal(t, 7*time.Second, c.session)
	assert.Equal(t, []string{"a", "b"}, c.topicNames, "deduplicated and sorted")
	assert.Equal(t, map[string][]int32{"a": {0}, "b": {0}}, c.Assignment())

	d := f.join(t, transport.Subscription{Group: "g", Topics: []string{"a"}, SessionTimeout: time.Minute})
	assert.NotEqual(t, c.Instance(), d.Instance())
	assert.Equal(t, time.Minute, d.session)
}

func TestRangeAssignment(t *testing.T) {
	f := newFixture(t, WithTopic("five", 5), WithTopic("two", 2), WithTopic("one", 1))
	b := f.join(t, sub("g", "b", transport.StartLatest, "five", "two"))
	a := f.join(t, sub("g", "a", transport.StartLatest, "five", "one"))
	c := f.join(t, sub("g", "c", transport.StartLatest, "five", "two"))
	// five: a, b, c sorted → 2, 2, 1. two: b, c → 1, 1. one: a → 1.
	assert.Equal(t, map[string][]int32{"five": {0, 1}, "one": {0}}, a.Assignment())
	assert.Equal(t, map[string][]int32{"five": {2, 3}, "two": {0}}, b.Assignment())
	assert.Equal(t, map[string][]int32{"five": {4}, "two": {1}}, c.Assignment())

	assert.Equal(t, []GroupInfo{{Name: "g", Members: []MemberInfo{
		{Instance: "a", Topics: []string{"five", "one"}, Assignment: map[string][]int32{"five": {0, 1}, "one": {0}}},
		{Instance: "b", Topics: []string{"five", "two"}, Assignment: map[string][]int32{"five": {2, 3}, "two": {0}}},
		{Instance: "c", Topics: []string{"five", "two"}, Assignment: map[string][]int32{"five": {4}, "two": {1}}},
	}}}, f.Groups())

	require.NoError(t, a.Close())
	assert.Empty(t, a.Assignment())
	assert.Equal(t, map[string][]int32{"five": {0, 1, 2}, "two": {0}}, b.Assignment())
	assert.Equal(t, map[string][]int32{"five": {3, 4}, "two": {1}}, c.Assignment())

	// More members than partitions: the last ones get none.
	d := f.join(t, sub("g", "d", transport.StartLatest, "one"))
	e := f.join(t, sub("g", "e", transport.StartLatest, "one"))
	assert.Equal(t, map[string][]int32{"one": {0}}, d.Assignment())
	assert.Empty(t, e.Assignment())
}

func TestGroups(t *testing.T) {
	f := newFixture(t)
	assert.Nil(t, f.Groups())
	f.join(t, sub("zeta", "z2", transport.StartLatest, "t"))
	f.join(t, sub("zeta", "z1", transport.StartLatest, "t"))
	alpha := f.join(t, sub("alpha", "a", transport.StartLatest, "t"))
	gs := f.Groups()
	require.Len(t, gs, 2)
	assert.Equal(t, "alpha", gs[0].Name)
	assert.Equal(t, "zeta", gs[1].Name)
	assert.Equal(t, []string{"z1", "z2"}, []string{gs[1].Members[0].Instance, gs[1].Members[1].Instance})
	assert.Equal(t, map[string][]int32{"t": {0}}, gs[1].Members[0].Assignment)
	assert.Empty(t, gs[1].Members[1].Assignment)

	require.NoError(t, alpha.Close())
	gs = f.Groups()
	require.Len(t, gs, 1, "a group without members nor commits is deleted")
	assert.Equal(t, "zeta", gs[0].Name)
}

// Members of a group share the partitions: every record is delivered to
// exactly one of them.
func TestGroupSharingExactlyOnce(t *testing.T) {
	f := newFixture(t, WithTopic("jobs", 7), WithMaxPollRecords(13))
	const total = 700
	var members []*Consumer
	for i := range 3 {
		members = append(members, f.join(t, sub("workers", fmt.Sprintf("w%d", i), transport.StartEarliest, "jobs")))
	}
	for i := range total {
		f.produce(t, transport.Message{Topic: "jobs", Key: fmt.Sprintf("key-%d", i), Value: fmt.Appendf(nil, "%d", i)})
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		owner = map[int32]string{}
		count int
		wg    sync.WaitGroup
	)
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msgs, err := m.Poll(ctx)
				if err != nil {
					return
				}
				assert.LessOrEqual(t, len(msgs), 13)
				assert.NoError(t, m.Commit(context.Background(), msgs...))
				mu.Lock()
				for _, r := range msgs {
					seen[string(r.Value)]++
					if o, ok := owner[r.Partition]; ok {
						assert.Equal(t, o, m.Instance(), "partition %d read by two members", r.Partition)
					}
					owner[r.Partition] = m.Instance()
				}
				count += len(msgs)
				if count >= total {
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, total, count)
	require.Len(t, seen, total)
	for v, n := range seen {
		require.Equal(t, 1, n, "record %s", v)
	}
	for p := range int32(7) {
		_, latest, err := f.Offsets("jobs", p)
		require.NoError(t, err)
		committed, err := f.Committed("workers", "jobs", p)
		require.NoError(t, err)
		assert.Equal(t, latest, committed, "partition %d", p)
	}
}

func TestPollOrderAndFairness(t *testing.T) {
	f := newFixture(t, WithTopic("t", 3), WithMaxPollRecords(10))
	c := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "p0", 100)
	f.produceTo(t, "t", 1, "p1", 3)
	f.produceTo(t, "t", 2, "p2", 100)

	msgs, err := c.Poll(context.Background())
	require.NoError(t, err)
	require.Len(t, msgs, 10)
	per := map[int32][]int64{}
	for _, m := range msgs {
		per[m.Partition] = append(per[m.Partition], m.Offset)
	}
	// 3 for the small partition, and the rest split between the others.
	assert.Equal(t, seq(0, 3), per[1])
	assert.Equal(t, 7, len(per[0])+len(per[2]))
	assert.GreaterOrEqual(t, len(per[0]), 3)
	assert.GreaterOrEqual(t, len(per[2]), 3)

	// Drain: offsets stay in order per partition, and nothing is lost.
	rest := pollN(t, c, 203-10)
	for _, m := range rest {
		per[m.Partition] = append(per[m.Partition], m.Offset)
	}
	assert.Equal(t, seq(0, 100), per[0])
	assert.Equal(t, seq(0, 3), per[1])
	assert.Equal(t, seq(0, 100), per[2])
}

func TestStartEarliestVersusLatest(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	f.produceTo(t, "t", 0, "old", 3)
	f.produceTo(t, "t", 1, "old", 2)
	early := f.join(t, sub("early", "a", transport.StartEarliest, "t"))
	late := f.join(t, sub("late", "a", transport.StartLatest, "t"))
	f.produceTo(t, "t", 1, "new", 1)

	assert.ElementsMatch(t, []string{"old-0", "old-1", "old-2", "old-0", "old-1", "new-0"}, values(pollN(t, early, 6)))
	assert.Equal(t, []string{"new-0"}, values(pollN(t, late, 1)))
	f.pollEmpty(t, late)
}

// "Latest" is resolved once per group and partition: records produced after
// the first Subscribe returned reach the group even if that member left
// before reading them, as long as the group lives (it has a member, here
// one reading another topic, or a committed offset).
func TestStartLatestResolvedOnce(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1), WithTopic("u", 1))
	f.produceTo(t, "t", 0, "before", 2)
	f.join(t, sub("g", "keeper", transport.StartLatest, "u"))
	first := f.join(t, sub("g", "a", transport.StartLatest, "t"))
	f.produceTo(t, "t", 0, "after", 2)
	require.NoError(t, first.Close())
	f.produceTo(t, "t", 0, "later", 1)

	second := f.join(t, sub("g", "b", transport.StartLatest, "t"))
	assert.Equal(t, []string{"after-0", "after-1", "later-0"}, values(pollN(t, second, 3)))

	// A group that joins now starts at the current end.
	other := f.join(t, sub("other", "a", transport.StartLatest, "t"))
	f.pollEmpty(t, other)
}

func TestCommitAndResume(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	f.produceTo(t, "t", 0, "r", 10)
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	msgs := pollN(t, a, 10)
	committed, err := f.Committed("g", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), committed, "nothing committed yet")

	// Commit stores the highest offset + 1, whatever the order.
	require.NoError(t, a.Commit(context.Background(), msgs[5], msgs[2], msgs[4]))
	committed, err = f.Committed("g", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(6), committed)
	require.NoError(t, a.Commit(context.Background()), "no msgs: no-op")
	require.NoError(t, a.Close())

	b := f.join(t, sub("g", "b", transport.StartLatest, "t"))
	assert.Equal(t, seq(6, 10), offsetsOf(pollN(t, b, 4)), "a new member resumes at the committed offset")

	committed, err = f.Committed("nogroup", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), committed)
	_, err = f.Committed("g", "nope", 0)
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	_, err = f.Committed("g", "t", 1)
	require.ErrorIs(t, err, transport.ErrInvalid)
}

func TestCommitOffsetsAndPositions(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "r", 5)
	f.produceTo(t, "t", 1, "r", 3)

	// Stored as given (REST semantics), last one wins, backwards allowed.
	require.NoError(t, a.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 4}, transport.Offset{Topic: "t", Partition: 1, Offset: 2}, transport.Offset{Topic: "t", Partition: 0, Offset: 1}))
	got := func(p int32) int64 {
		off, err := f.Committed("g", "t", p)
		require.NoError(t, err)
		return off
	}
	assert.Equal(t, [2]int64{1, 2}, [2]int64{got(0), got(1)})
	require.ErrorIs(t, a.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: -1}), transport.ErrInvalid)
	require.ErrorIs(t, a.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 3}, transport.Offset{Topic: "t", Partition: 2, Offset: 1}), transport.ErrNotAssigned)
	assert.Equal(t, [2]int64{1, 2}, [2]int64{got(0), got(1)}, "a failed commit stores nothing")

	// Positions: where Poll has read to; for unread partitions, the start.
	pollN(t, a, 8)
	require.NoError(t, a.CommitPositions(ctx))
	assert.Equal(t, [2]int64{5, 3}, [2]int64{got(0), got(1)})
	require.NoError(t, a.CommitOffsets(ctx))

	// A partition newly owned starts at its committed offset.
	require.NoError(t, a.CommitOffsets(ctx, transport.Offset{Topic: "t", Partition: 0, Offset: 2}))
	require.NoError(t, a.Close())
	b := f.join(t, sub("g", "b", transport.StartLatest, "t"))
	assert.ElementsMatch(t, []string{"r-2", "r-3", "r-4"}, values(pollN(t, b, 3)))
}

func TestCommitNotAssigned(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "r", 2)
	f.produceTo(t, "t", 1, "r", 2)
	fromA := pollN(t, a, 2)
	fromB := pollN(t, b, 2)
	require.Equal(t, int32(0), fromA[0].Partition)
	require.Equal(t, int32(1), fromB[0].Partition)

	err := a.Commit(ctx, fromA[0], fromB[1])
	require.ErrorIs(t, err, transport.ErrNotAssigned)
	assert.EqualError(t, err, `memory: commit "t" partition 1 for member "a" of group "g": transport: partition not assigned to this member`)
	for p := range int32(2) {
		off, err := f.Committed("g", "t", p)
		require.NoError(t, err)
		assert.Equal(t, int64(-1), off, "nothing stored for partition %d", p)
	}
	require.ErrorIs(t, a.Commit(ctx, transport.Message{Topic: "other", Partition: 0}), transport.ErrNotAssigned)
	require.ErrorIs(t, a.Commit(ctx, transport.Message{Topic: "t", Partition: 0, Offset: -2}), transport.ErrInvalid)

	// Tail readers commit nothing and never fail.
	tail, err := f.Tail(ctx, "t")
	require.NoError(t, err)
	defer tail.Close()
	require.NoError(t, tail.Commit(ctx, fromB...))
	off, err := f.Committed("g", "t", 1)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), off)
}

// A joining member takes partitions; the uncommitted records of those
// partitions are delivered again to it, while the old owner keeps its
// position on the partitions it keeps.
func TestRebalanceOnJoinRedelivers(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "p0", 5)
	f.produceTo(t, "t", 1, "p1", 5)
	msgs := pollN(t, a, 10)
	var p1 []transport.Message
	for _, m := range msgs {
		if m.Partition == 1 {
			p1 = append(p1, m)
		}
	}
	require.NoError(t, a.Commit(ctx, p1[:2]...))

	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	assert.Equal(t, map[string][]int32{"t": {0}}, a.Assignment())
	assert.Equal(t, map[string][]int32{"t": {1}}, b.Assignment())
	assert.Equal(t, []string{"p1-2", "p1-3", "p1-4"}, values(pollN(t, b, 3)))
	f.pollEmpty(t, a)
	require.ErrorIs(t, a.Commit(ctx, p1[4]), transport.ErrNotAssigned, "a no longer owns partition 1")
}

func TestRebalanceOnCloseRedelivers(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "p0", 3)
	f.produceTo(t, "t", 1, "p1", 3)
	fromB := pollN(t, b, 3)
	require.NoError(t, b.Commit(ctx, fromB[0]))
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "idempotent")

	assert.ElementsMatch(t, []string{"p0-0", "p0-1", "p0-2", "p1-1", "p1-2"}, values(pollN(t, a, 5)))
	_, err := b.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, b.Commit(ctx, fromB[1]), transport.ErrClosed)
	require.ErrorIs(t, b.CommitPositions(ctx), transport.ErrClosed)
}

func TestRebalanceOnMaxPollInterval(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2), WithMaxPollInterval(10*time.Second))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "p0", 3)
	f.produceTo(t, "t", 1, "p1", 3)
	fromA := pollN(t, a, 3)
	pollN(t, b, 3)

	f.clock.advance(10 * time.Second) // not more than the timeout yet
	f.pollEmpty(t, b)
	assert.Equal(t, map[string][]int32{"t": {0}}, a.Assignment())

	f.clock.advance(10*time.Second + time.Millisecond)
	// b's poll drops a, whose uncommitted records come to b.
	assert.Equal(t, []string{"p0-0", "p0-1", "p0-2"}, values(pollN(t, b, 3)))
	assert.Empty(t, a.Assignment())
	assert.Equal(t, []string{"b"}, []string{f.Groups()[0].Members[0].Instance})
	require.ErrorIs(t, a.Commit(ctx, fromA...), transport.ErrNotAssigned)

	// a's next Poll rejoins: it gets partition 0 back, from the committed
	// offset (none: the group's start), so it reads it again.
	require.NoError(t, b.Commit(ctx, transport.Message{Topic: "t", Partition: 0, Offset: 0}))
	assert.Equal(t, []string{"p0-1", "p0-2"}, values(pollN(t, a, 2)))
	assert.Equal(t, map[string][]int32{"t": {0}}, a.Assignment())
	assert.Equal(t, map[string][]int32{"t": {1}}, b.Assignment())
}

func TestMaxPollIntervalSparesBlockedPoll(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2), WithMaxPollInterval(time.Second))
	a := f.join(t, sub("g", "a", transport.StartLatest, "t"))
	b := f.join(t, sub("g", "b", transport.StartLatest, "t"))
	blocked := f.blockedSignal(a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.Poll(ctx)
		done <- err
	}()
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("Poll did not block")
	}
	f.clock.advance(time.Hour)
	f.pollEmpty(t, b)
	assert.Equal(t, map[string][]int32{"t": {0}}, a.Assignment(), "a member blocked in Poll is alive")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	// A Poll that waited and then got records was alive until it returned.
	blocked = f.blockedSignal(a)
	done2 := make(chan []transport.Message, 1)
	go func() {
		msgs, err := a.Poll(context.Background())
		assert.NoError(t, err)
		done2 <- msgs
	}()
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("Poll did not block")
	}
	f.clock.advance(time.Hour)
	f.produceTo(t, "t", 0, "r", 1)
	select {
	case msgs := <-done2:
		assert.Equal(t, []string{"r-0"}, values(msgs))
	case <-time.After(wait):
		t.Fatal("Poll did not return after a produce")
	}
	f.clock.advance(time.Second) // not more than the timeout
	f.pollEmpty(t, b)
	assert.Equal(t, map[string][]int32{"t": {0}}, a.Assignment())

	// Once its Poll returned, the clock counts again; b takes partition 0
	// and gets a's uncommitted record.
	f.clock.advance(time.Millisecond)
	assert.Equal(t, []string{"r-0"}, values(pollN(t, b, 1)))
	assert.Empty(t, a.Assignment())
	assert.Len(t, f.Groups()[0].Members, 1)
}

func TestMaxPollIntervalCheckedByGroupsAndCommitAndJoin(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1), WithMaxPollInterval(time.Second))
	f.join(t, sub("g", "a", transport.StartLatest, "t"))
	f.clock.advance(2 * time.Second)
	assert.Empty(t, f.Groups()[0].Members, "Groups drops timed-out members")

	f.join(t, sub("h", "a", transport.StartLatest, "t"))
	f.clock.advance(2 * time.Second)
	c := f.join(t, sub("h", "c", transport.StartLatest, "t"))
	assert.Equal(t, map[string][]int32{"t": {0}}, c.Assignment(), "Join drops timed-out members")
	f.clock.advance(2 * time.Second)
	require.ErrorIs(t, c.Commit(context.Background(), transport.Message{Topic: "t"}), transport.ErrNotAssigned,
		"Commit drops timed-out members, even the committer")
}

func TestFencing(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	ctx := context.Background()
	old := f.join(t, sub("g", "same", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "r", 3)
	msgs := pollN(t, old, 3)
	require.NoError(t, old.Commit(ctx, msgs[0]))

	blocked := f.blockedSignal(old)
	done := make(chan error, 1)
	go func() {
		_, err := old.Poll(ctx)
		done <- err
	}()
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("Poll did not block")
	}

	replacement := f.join(t, sub("g", "same", transport.StartLatest, "t"))
	select {
	case err := <-done:
		require.ErrorIs(t, err, transport.ErrFenced)
		assert.EqualError(t, err, `memory: member "same" of group "g": transport: member replaced by a newer instance`)
	case <-time.After(wait):
		t.Fatal("fencing did not wake the blocked Poll")
	}
	_, err := old.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrFenced)
	require.ErrorIs(t, old.Commit(ctx, msgs[1]), transport.ErrFenced)
	assert.Empty(t, old.Assignment())
	require.NoError(t, old.Close())
	require.NoError(t, old.Close())

	assert.Equal(t, []string{"r-1", "r-2"}, values(pollN(t, replacement, 2)), "the new instance starts from committed")
	gs := f.Groups()
	require.Len(t, gs[0].Members, 1)
	assert.Equal(t, map[string][]int32{"t": {0}}, replacement.Assignment(), "closing the fenced one changed nothing")
}

// A member dropped for not polling whose instance id is then taken by
// a new member is fenced, rather than taking the id back.
func TestFencingTimedOutMember(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1), WithMaxPollInterval(time.Second))
	old := f.join(t, sub("g", "x", transport.StartLatest, "t"))
	f.clock.advance(2 * time.Second)
	assert.Empty(t, f.Groups()[0].Members)
	f.join(t, sub("g", "x", transport.StartLatest, "t"))
	_, err := old.Poll(context.Background())
	require.ErrorIs(t, err, transport.ErrFenced)
}

func TestGroupsSorted(t *testing.T) {
	f := newFixture(t)
	names := []string{"m", "c", "x", "a"}
	for _, n := range names {
		f.join(t, sub(n, "i", transport.StartLatest, "t"))
	}
	var got []string
	for _, g := range f.Groups() {
		got = append(got, g.Name)
	}
	assert.True(t, sort.StringsAreSorted(got))
	assert.Len(t, got, 4)
}

// A member blocked in Poll takes over the partitions of a member that
// stopped polling as soon as its max poll interval runs out, without new records or
// other members' activity to trigger the check.
func TestMaxPollIntervalWhileOtherMemberBlocked(t *testing.T) {
	b := newBroker(t, WithPartitions(3))
	defer b.Close()
	ctx := context.Background()
	for i := range 30 {
		_, err := b.Produce(ctx, transport.Message{Topic: "crash", Key: fmt.Sprint(i)})
		require.NoError(t, err)
	}
	sub := transport.Subscription{Group: "g", Topics: []string{"crash"}, Start: transport.StartEarliest, MaxPollInterval: 200 * time.Millisecond}
	sub.Instance = "a-crashed"
	crashed, err := b.Subscribe(ctx, sub)
	require.NoError(t, err)
	first, err := crashed.Poll(ctx)
	require.NoError(t, err)
	require.Len(t, first, 30, "alone in the group, it owns every partition")
	// It never commits, polls or closes again.
	sub.Instance = "b-survivor"
	survivor, err := b.Subscribe(ctx, sub)
	require.NoError(t, err)
	defer survivor.Close()
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	for got < 30 && time.Now().Before(deadline) {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		msgs, err := survivor.Poll(pctx)
		cancel()
		require.NoError(t, err)
		got += len(msgs)
	}
	assert.Equal(t, 30, got, "uncommitted records redelivered to the survivor")
}
