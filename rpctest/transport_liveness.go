package rpctest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A member that does not poll for several times its SessionTimeout, but for
// less than its MaxPollInterval, keeps its partitions: an open member
// heartbeats by itself, so a busy member is not a dead one. Its records do
// not move to the other member, and its Commit of them succeeds.
func testHeartbeat(t *testing.T, e *tenv) {
	topic := e.topic()
	g := e.group()
	a := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest,
		SessionTimeout: ShortSessionTimeout, MaxPollInterval: time.Minute})
	b := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest})
	out := mustProduce(t, e.tr, e.perPartition(topic, "h", 2)...)
	per := drainGroup(t, []transport.Consumer{a, b}, len(out), false)
	requireExactlyOnce(t, out, append(slices.Clone(per[0]), per[1]...))
	require.NotEmpty(t, per[0], "member a received nothing; cannot check its liveness")
	mustCommit(t, b, per[1]...)

	// a is busy (does not poll) for 4 sessions while b polls.
	busy := 4 * ShortSessionTimeout
	got, err := pollWhile(t.Context(), b, busy, func(got []transport.Message) bool { return len(got) == 0 })
	require.Empty(t, got, "a's records moved to b while a was busy for %v (session %v): %s", busy, ShortSessionTimeout, describe(got))
	if err != nil && !errors.Is(err, errPollTimeout) {
		t.Fatalf("Poll of b: %v", err)
	}
	mustCommit(t, a, per[0]...)

	// And a is still a working member.
	more := mustProduce(t, e.tr, e.onePerPartition(topic, "after")...)
	per = drainGroup(t, []transport.Consumer{a, b}, len(more), false)
	requireExactlyOnce(t, more, append(slices.Clone(per[0]), per[1]...))
}

// revocations records the OnRevoked calls of one member.
type revocations struct {
	mu  sync.Mutex
	tps []transport.TopicPartition
	n   int
}

func (r *revocations) record(tps []transport.TopicPartition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tps = append(r.tps, tps...)
	r.n++
}

func (r *revocations) get() ([]transport.TopicPartition, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.tps), r.n
}

// When a second member joins, OnRevoked tells the first which partitions it
// lost; those partitions' uncommitted records go to the new member, and the
// first member's Commit of them fails with ErrNotAssigned. Close calls no
// OnRevoked, neither of the closing member nor of the one that gains.
func testOnRevoked(t *testing.T, e *tenv) {
	topic := e.topic()
	g := e.group()
	var ra, rb revocations
	a := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest, OnRevoked: ra.record})
	out := mustProduce(t, e.tr, e.onePerPartition(topic, "r")...)
	requireExactlyOnce(t, out, pollUntil(t, a, len(out), waitTimeout))

	b := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest, OnRevoked: rb.record})
	// A transport may deliver the revocation from a's next Poll: poll a
	// until it comes, bounded.
	deadline := time.Now().Add(waitTimeout)
	var revoked []transport.TopicPartition
	for {
		if revoked, _ = ra.get(); len(revoked) > 0 || time.Now().After(deadline) {
			break
		}
		got, err := pollWhile(t.Context(), a, pollSlice, func([]transport.Message) bool { return true })
		require.Empty(t, got, "a got records after b joined")
		if err != nil && !errors.Is(err, errPollTimeout) {
			t.Fatalf("Poll of a: %v", err)
		}
	}
	require.NotEmpty(t, revoked, "OnRevoked of a was not called within %v after b joined", waitTimeout)
	var moved []transport.Message
	for _, m := range out {
		if slices.Contains(revoked, transport.TopicPartition{Topic: m.Topic, Partition: m.Partition}) {
			moved = append(moved, m)
		}
	}
	require.NotEmpty(t, moved, "OnRevoked named %v, partitions of no record of the topic", revoked)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	require.ErrorIs(t, a.Commit(ctx, moved[0]), transport.ErrNotAssigned, "Commit of a revoked partition")
	fromB := pollUntil(t, b, len(moved), waitTimeout)
	requireExactlyOnce(t, moved, fromB)
	mustCommit(t, b, fromB...)

	closeWithin(t, "Consumer.Close", b.Close, false)
	pollNone(t, a)
	_, na := ra.get()
	_, nb := rb.get()
	require.Equal(t, 1, na, "OnRevoked of a called again, though b's Close only gave partitions back")
	require.Zero(t, nb, "OnRevoked of b called for its Close")
}
