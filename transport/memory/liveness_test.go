package memory

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// revocations records the OnRevoked calls of one member.
type revocations struct {
	mu    sync.Mutex
	calls [][]transport.TopicPartition
}

func (r *revocations) record(tps []transport.TopicPartition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, tps)
}

func (r *revocations) get() [][]transport.TopicPartition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]transport.TopicPartition(nil), r.calls...)
}

// An open member heartbeats by itself: going longer than its session
// timeout without a Poll (but less than its max poll interval) keeps its
// partitions. Before, only Poll counted as liveness and a busy member was
// dropped (issue 13 bug 5).
func TestSessionTimeoutSparesBusyMember(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2), WithSessionTimeout(300*time.Millisecond), WithMaxPollInterval(time.Minute))
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	b := f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	f.clock.advance(30 * time.Second)
	f.pollEmpty(t, b)
	assert.Equal(t, map[string][]int32{"t": {0}}, a.Assignment())
	assert.Len(t, f.Groups()[0].Members, 2)
}

// Regression (issue 13 bug 4): a member past its session timeout committed
// nothing and CommitPositions returned nil. Now the session does not lapse
// (the member heartbeats), so the commit is stored.
func TestCommitPositionsAfterSessionTimeoutCommits(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	ctx := context.Background()
	a := f.join(t, transport.Subscription{Group: "g", Instance: "a", Topics: []string{"t"},
		Start: transport.StartEarliest, SessionTimeout: 300 * time.Millisecond})
	f.produceTo(t, "t", 0, "r", 2)
	pollN(t, a, 2)
	f.clock.advance(400 * time.Millisecond)
	require.NoError(t, a.CommitPositions(ctx))
	off, err := f.Committed("g", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(2), off)
}

// Regression (issue 13 bug 4): a commit by a member that was dropped
// answered nil and committed nothing. It now fails with ErrNotAssigned,
// and the member's next Poll rejoins.
func TestCommitAfterDropFails(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1), WithMaxPollInterval(time.Second))
	ctx := context.Background()
	a := f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "r", 2)
	msgs := pollN(t, a, 2)
	f.clock.advance(2 * time.Second)
	err := a.CommitPositions(ctx)
	require.ErrorIs(t, err, transport.ErrNotAssigned)
	assert.Contains(t, err.Error(), "dropped from the group after not polling for 1s")
	require.ErrorIs(t, a.CommitOffsets(ctx, transport.Offset{Topic: "t", Offset: 2}), transport.ErrNotAssigned)
	require.ErrorIs(t, a.Commit(ctx, msgs...), transport.ErrNotAssigned)
	off, err := f.Committed("g", "t", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), off)

	assert.Equal(t, []string{"r-0", "r-1"}, values(pollN(t, a, 2)), "the next Poll rejoins and reads again")
	require.NoError(t, a.CommitPositions(ctx))
}

func TestOnRevoked(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2), WithMaxPollInterval(time.Second))
	var ra, rb revocations
	subA := sub("g", "a", transport.StartEarliest, "t")
	subA.OnRevoked = ra.record
	a := f.join(t, subA)
	subB := sub("g", "b", transport.StartEarliest, "t")
	subB.OnRevoked = rb.record
	b := f.join(t, subB)
	assert.Equal(t, [][]transport.TopicPartition{{{Topic: "t", Partition: 1}}}, ra.get(), "a rebalance revokes what moves")
	assert.Empty(t, rb.get())

	require.NoError(t, b.Close())
	assert.Empty(t, rb.get(), "not called for Close")
	assert.Len(t, ra.get(), 1, "gaining partitions revokes nothing")

	f.clock.advance(2 * time.Second)
	assert.Empty(t, f.Groups()[0].Members)
	assert.Equal(t, []transport.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}}, ra.get()[1],
		"a drop revokes everything")
	f.pollEmpty(t, a)
	assert.Equal(t, map[string][]int32{"t": {0, 1}}, a.Assignment())

	// Fencing does not call it.
	f.join(t, sub("g", "a", transport.StartEarliest, "t"))
	assert.Len(t, ra.get(), 2)
}

// OnRevoked runs with the group's lock held and no other: it may produce to
// the broker (even to a topic it creates) without deadlocking.
func TestOnRevokedMayProduce(t *testing.T) {
	f := newFixture(t, WithTopic("t", 2))
	subA := sub("g", "a", transport.StartEarliest, "t")
	produced := make(chan error, 1)
	subA.OnRevoked = func([]transport.TopicPartition) {
		_, err := f.Produce(context.Background(), transport.Message{Topic: "revocations.new", Value: []byte("x")})
		produced <- err
	}
	f.join(t, subA)
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		f.join(t, sub("g", "b", transport.StartEarliest, "t"))
	}()
	select {
	case <-joined:
	case <-time.After(wait):
		t.Fatal("Subscribe deadlocked on OnRevoked's Produce")
	}
	require.NoError(t, <-produced)
}

// Regression (issue 13 bug 3): a committed offset past the log end made the
// partition's next owner wait there, skipping every record below it. The
// position is now reset by the owner's Start, as Kafka's auto.offset.reset.
func TestCommittedPastEndIsReset(t *testing.T) {
	for _, start := range []transport.Start{transport.StartEarliest, transport.StartLatest} {
		t.Run(start.String(), func(t *testing.T) {
			f := newFixture(t, WithTopic("t", 1))
			ctx := context.Background()
			f.produceTo(t, "t", 0, "old", 3)
			a := f.join(t, sub("g", "a", start, "t"))
			require.NoError(t, a.CommitOffsets(ctx, transport.Offset{Topic: "t", Offset: 1000}))
			require.NoError(t, a.Close())

			b := f.join(t, sub("g", "b", start, "t"))
			f.produceTo(t, "t", 0, "new", 2)
			want := []string{"new-0", "new-1"}
			if start == transport.StartEarliest {
				want = []string{"old-0", "old-1", "old-2", "new-0", "new-1"}
			}
			assert.Equal(t, want, values(pollN(t, b, len(want))))
			off, err := f.Committed("g", "t", 0)
			require.NoError(t, err)
			assert.Equal(t, int64(1000), off, "the commit itself stays until the next one")
		})
	}
}

// Groups made per process (rpc's private readers, reply groups) used to
// stay forever. A group without members nor committed offsets is deleted;
// one with commits is kept.
func TestGroupDeletedWhenLastMemberLeaves(t *testing.T) {
	f := newFixture(t, WithTopic("t", 1))
	ctx := context.Background()
	for range 50 {
		c, err := f.Subscribe(ctx, transport.Subscription{Group: "reader." + t.Name() + time.Now().String(), Topics: []string{"t"}})
		require.NoError(t, err)
		require.NoError(t, c.Close())
	}
	assert.Empty(t, f.Groups())

	keep := f.join(t, sub("kept", "a", transport.StartEarliest, "t"))
	f.produceTo(t, "t", 0, "r", 1)
	require.NoError(t, keep.Commit(ctx, pollN(t, keep, 1)...))
	require.NoError(t, keep.Close())
	gs := f.Groups()
	require.Len(t, gs, 1)
	assert.Equal(t, GroupInfo{Name: "kept", Members: []MemberInfo{}}, gs[0])

	// A member dropped for not polling keeps its group alive.
	f2 := newFixture(t, WithTopic("t", 1), WithMaxPollInterval(time.Second))
	f2.join(t, sub("g", "a", transport.StartEarliest, "t"))
	f2.clock.advance(2 * time.Second)
	require.Len(t, f2.Groups(), 1)
}
