package rpctest

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Subscribe refuses a subscription without a group, without topics or with
// an empty topic name, with ErrInvalid.
func testSubscribeRejectsInvalid(t *testing.T, e *tenv) {
	topic := e.topic()
	tests := []struct {
		name string
		sub  transport.Subscription
	}{
		{"NoGroup", transport.Subscription{Topics: []string{topic}}},
		{"NoTopics", transport.Subscription{Group: e.group()}},
		{"EmptyTopic", transport.Subscription{Group: e.group(), Topics: []string{topic, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			c, err := e.tr.Subscribe(ctx, tt.sub)
			if c != nil {
				t.Cleanup(func() { _ = c.Close() })
			}
			require.ErrorIs(t, err, transport.ErrInvalid, "Subscribe(%+v)", tt.sub)
		})
	}
}

// One member reads every partition of every topic it subscribes to.
func testSubscribeManyTopics(t *testing.T, e *tenv) {
	t1, t2 := e.topic(), e.topic()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, t1, t2))
	out := mustProduce(t, e.tr, append(e.onePerPartition(t1, "one"), e.onePerPartition(t2, "two")...)...)
	got := pollUntil(t, c, len(out), waitTimeout)
	requireExactlyOnce(t, out, got)
	requireOffsetOrder(t, got)
	pollNone(t, c)
}

// A group with StartEarliest reads records produced before it subscribed; a
// group with StartLatest does not, but reads every record produced after
// Subscribe returned.
func testStartEarliestLatest(t *testing.T, e *tenv) {
	topic := e.topic()
	before := mustProduce(t, e.tr, e.onePerPartition(topic, "before")...)
	early := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, topic))
	late := mustSubscribe(t, e.tr, e.sub(transport.StartLatest, topic))
	// No wait here: once Subscribe has returned, positions are fixed.
	after := mustProduce(t, e.tr, e.onePerPartition(topic, "after")...)

	gotEarly := pollUntil(t, early, len(before)+len(after), waitTimeout)
	requireExactlyOnce(t, append(slices.Clone(before), after...), gotEarly)
	requireOffsetOrder(t, gotEarly)

	gotLate := pollUntil(t, late, len(after), waitTimeout)
	requireExactlyOnce(t, after, gotLate)

	pollNone(t, early)
	pollNone(t, late)
}

// Two members of a group share its partitions: each record reaches exactly
// one of them, both get some, and each partition is read by one member.
func testGroupSharing(t *testing.T, e *tenv) {
	topic := e.topic()
	g := e.group()
	a := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartLatest})
	b := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartLatest})
	out := mustProduce(t, e.tr, e.perPartition(topic, "shared", 10)...)

	per := drainGroup(t, []transport.Consumer{a, b}, len(out), true)
	requireExactlyOnce(t, out, append(slices.Clone(per[0]), per[1]...))
	for i, got := range per {
		require.NotEmpty(t, got, "member %d received nothing: %d partitions should be shared by 2 members", i, e.parts)
		requireOffsetOrder(t, got)
	}
	for _, p := range partitionsOf(per[0]) {
		require.NotContains(t, partitionsOf(per[1]), p, "partition %d was read by both members", p)
	}
}

// Commit stores, per partition, the highest offset among the records given
// plus one; a new member of the group resumes exactly there, whatever its
// Start. Commit with no records is a no-op.
func testCommitAndResume(t *testing.T, e *tenv) {
	topic := e.topic()
	g := e.group()
	const k, done = 6, 3 // records per partition; records committed per partition
	a := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest})
	out := mustProduce(t, e.tr, e.perPartition(topic, "c", k)...)
	got := pollUntil(t, a, len(out), waitTimeout)
	requireExactlyOnce(t, out, got)

	// Commit records 2 and 0 of each partition, out of order and
	// interleaved across partitions: each partition resumes after record 2.
	var toCommit, rest []transport.Message
	for p := range e.parts {
		recs := out[p*k : (p+1)*k]
		toCommit = append(toCommit, recs[done-1], recs[0])
		rest = append(rest, recs[done:]...)
	}
	slices.Reverse(toCommit)
	mustCommit(t, a, toCommit...)
	mustCommit(t, a) // no records: no-op
	closeWithin(t, "Consumer.Close", a.Close, false)

	// StartLatest would skip everything: the committed offsets must win.
	b := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartLatest})
	resumed := pollUntil(t, b, len(rest), waitTimeout)
	requireExactlyOnce(t, rest, resumed)
	requireOffsetOrder(t, resumed)
	pollNone(t, b)

	// Committing everything leaves nothing to redeliver: a third member
	// reads only what is produced after it joined.
	mustCommit(t, b, resumed...)
	closeWithin(t, "Consumer.Close", b.Close, false)
	c := mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest})
	tail := mustProduce(t, e.tr, e.onePerPartition(topic, "tail")...)
	gotTail := pollUntil(t, c, len(tail), waitTimeout)
	requireExactlyOnce(t, tail, gotTail)
	pollNone(t, c)
}

// Committing a partition the member does not own (taken by a new member, or
// of a topic it never read) fails with ErrNotAssigned and changes nothing,
// not even for the partitions of the same call it does own.
func testCommitNotOwned(t *testing.T, e *tenv) {
	topic, other := e.topic(), e.topic()
	g := e.group()
	sub := transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest}
	a := mustSubscribe(t, e.tr, sub)
	out := mustProduce(t, e.tr, e.perPartition(topic, "n", 3)...)
	gotA := pollUntil(t, a, len(out), waitTimeout)
	requireExactlyOnce(t, out, gotA)

	// b takes some of a's partitions and gets their uncommitted records.
	b := mustSubscribe(t, e.tr, sub)
	gotB := pollUntil(t, b, 1, waitTimeout)
	more, err := pollWhile(t.Context(), b, quietPeriod, func([]transport.Message) bool { return true })
	require.ErrorIs(t, err, errPollTimeout)
	gotB = append(gotB, more...)
	moved := partitionsOf(gotB)
	var kept []int32
	for p := range int32(e.parts) {
		if !slices.Contains(moved, p) {
			kept = append(kept, p)
		}
	}
	require.NotEmpty(t, kept, "member b took every partition (%v) from member a", moved)
	recordOn := func(p int32) transport.Message {
		for _, m := range out {
			if m.Partition == p {
				return m
			}
		}
		t.Fatalf("no record on partition %d", p)
		return transport.Message{}
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	err = a.Commit(ctx, recordOn(moved[0]))
	require.ErrorIs(t, err, transport.ErrNotAssigned, "Commit of partition %d, now owned by member b", moved[0])
	err = a.Commit(ctx, recordOn(kept[0]), recordOn(moved[0]))
	require.ErrorIs(t, err, transport.ErrNotAssigned, "Commit of partitions %d (owned) and %d (not owned)", kept[0], moved[0])
	foreign := mustProduce(t, e.tr, transport.Message{Topic: other, Value: []byte("foreign")})
	err = a.Commit(ctx, foreign...)
	require.ErrorIs(t, err, transport.ErrNotAssigned, "Commit of a topic the member does not read")

	// Nothing was committed: a fresh member reads everything again.
	closeWithin(t, "Consumer.Close", a.Close, false)
	closeWithin(t, "Consumer.Close", b.Close, false)
	c := mustSubscribe(t, e.tr, sub)
	requireExactlyOnce(t, out, readToEnd(t, e, c, topic))
}

// When a member closes, its partitions go to the remaining member at once,
// from the committed offsets: its uncommitted records are delivered again.
func testRedeliveryAfterClose(t *testing.T, e *tenv) {
	redeliveryScenario(t, e, transport.Subscription{}, func(a transport.Consumer) {
		closeWithin(t, "Consumer.Close", a.Close, false)
	})
}

// A member that stops polling for longer than its MaxPollInterval is
// dropped: its partitions go to the other member from the committed offsets,
// and its own later Commit of them fails with ErrNotAssigned.
func testRedeliveryAfterMaxPollInterval(t *testing.T, e *tenv) {
	a, rest := redeliveryScenario(t, e, transport.Subscription{MaxPollInterval: ShortMaxPollInterval}, func(transport.Consumer) {
		// a just stops polling.
	})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	err := a.Commit(ctx, rest...)
	require.ErrorIs(t, err, transport.ErrNotAssigned, "Commit by a member dropped after its max poll interval")
}

// redeliveryScenario runs the redelivery cases: members a (with aSub's
// liveness settings) and b share a topic and read all of it; b commits all it
// read, a commits the first record of each of its partitions; then leave(a)
// makes a go away and b must receive exactly a's uncommitted records, which
// are returned with a.
//
// The case needs both members to receive records. Under load a member may
// join after the other read everything (or, with a short max poll interval,
// be dropped before it polled): that is a setup that cannot check
// redelivery, not a failure of it, and the setup is tried again with a
// fresh topic and group, up to three times.
func redeliveryScenario(t *testing.T, e *tenv, aSub transport.Subscription, leave func(a transport.Consumer)) (a transport.Consumer, rest []transport.Message) {
	t.Helper()
	var (
		b          transport.Consumer
		gotA, gotB []transport.Message
	)
	for attempt := 1; ; attempt++ {
		topic := e.topic()
		g := e.group()
		sub := aSub
		sub.Group, sub.Topics, sub.Start = g, []string{topic}, transport.StartEarliest
		a = mustSubscribe(t, e.tr, sub)
		b = mustSubscribe(t, e.tr, transport.Subscription{Group: g, Topics: []string{topic}, Start: transport.StartEarliest})
		out := mustProduce(t, e.tr, e.perPartition(topic, "r", 4)...)

		per := drainGroup(t, []transport.Consumer{a, b}, len(out), false)
		gotA, gotB = per[0], per[1]
		all := append(slices.Clone(gotA), gotB...)
		if dups := duplicatedOnly(out, all); aSub.MaxPollInterval > 0 && dups > 0 && attempt < 3 {
			// With a short max poll interval, a member whose Polls are
			// descheduled for longer than it under load is dropped during
			// the drain, and its uncommitted records go to the other: the
			// redelivery this case checks, happening before the setup
			// is done (seen once: a whole partition's 4 records twice).
			t.Logf("attempt %d: %d records delivered to both members (member a dropped for its %v max poll interval during the setup): setting up again",
				attempt, dups, aSub.MaxPollInterval)
		} else {
			requireExactlyOnce(t, out, all)
			if (len(gotA) > 0 && len(gotB) > 0) || attempt == 3 {
				break
			}
			t.Logf("attempt %d: member a received %d records, b %d: setting up again", attempt, len(gotA), len(gotB))
		}
		// A member dropped for its poll interval may say so when closed:
		// only that the Close returns matters here.
		closeWithin(t, "Consumer.Close", func() error { _ = a.Close(); return nil }, true)
		closeWithin(t, "Consumer.Close", func() error { _ = b.Close(); return nil }, true)
	}
	require.NotEmpty(t, gotA, "member a received nothing in three setups; cannot check redelivery")
	require.NotEmpty(t, gotB, "member b received nothing in three setups; cannot check redelivery")

	mustCommit(t, b, gotB...)
	var firsts, want []transport.Message
	seen := make(map[int32]bool)
	for _, m := range gotA {
		if !seen[m.Partition] {
			seen[m.Partition] = true
			firsts = append(firsts, m)
		} else {
			want = append(want, m)
		}
	}
	mustCommit(t, a, firsts...)

	leave(a)
	redelivered := pollUntil(t, b, len(want), waitTimeout)
	requireExactlyOnce(t, want, redelivered)
	requireOffsetOrder(t, redelivered)
	pollNone(t, b)
	return a, want
}

// A member joining with the Instance of a live one replaces it: the old
// member's Poll, blocked or later, fails with ErrFenced, and the new one
// takes over from the committed offsets.
func testFencing(t *testing.T, e *tenv) {
	topic := e.topic()
	sub := transport.Subscription{Group: e.group(), Instance: e.instance(), Topics: []string{topic}, Start: transport.StartEarliest}
	a := mustSubscribe(t, e.tr, sub)
	out := mustProduce(t, e.tr, e.perPartition(topic, "f", 4)...)
	got := pollUntil(t, a, len(out), waitTimeout)
	requireExactlyOnce(t, out, got)
	var firstHalf, secondHalf []transport.Message
	for p := range e.parts {
		firstHalf = append(firstHalf, out[p*4:p*4+2]...)
		secondHalf = append(secondHalf, out[p*4+2:p*4+4]...)
	}
	mustCommit(t, a, firstHalf...)

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	started, blocked := pollInBackground(ctx, a)
	<-started
	b := mustSubscribe(t, e.tr, sub)
	r := awaitPoll(t, blocked, "member replaced by a new instance")
	require.ErrorIs(t, r.err, transport.ErrFenced, "blocked Poll of the replaced member (records %s)", describe(r.msgs))
	msgs, err := a.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrFenced, "Poll of the replaced member (records %s)", describe(msgs))

	resumed := pollUntil(t, b, len(secondHalf), waitTimeout)
	requireExactlyOnce(t, secondHalf, resumed)
	pollNone(t, b)
}
