package rpctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// tenv is what a case of the transport suite works with: the transport under
// test, its declared features and a source of unique names.
type tenv struct {
	tr     transport.Transport
	f      Features
	parts  int    // f.partitions()
	prefix string // "rpctest-<case>-<random>"
	seq    atomic.Int64
}

func newTenv(t testing.TB, tr transport.Transport, f Features) *tenv {
	return &tenv{
		tr:     tr,
		f:      f,
		parts:  f.partitions(),
		prefix: fmt.Sprintf("rpctest-%s-%08x", caseSlug(t.Name()), rand.Uint32()),
	}
}

// name returns a name not used before in this run, e.g. for kind "t"
// "rpctest-roundtrip-1a2b3c4d-t1".
func (e *tenv) name(kind string) string {
	return fmt.Sprintf("%s-%s%d", e.prefix, kind, e.seq.Add(1))
}

func (e *tenv) topic() string    { return e.name("t") }
func (e *tenv) group() string    { return e.name("g") }
func (e *tenv) instance() string { return e.name("i") }

// sub returns a Subscription of a new group to topics.
func (e *tenv) sub(start transport.Start, topics ...string) transport.Subscription {
	return transport.Subscription{Group: e.group(), Topics: topics, Start: start}
}

// onePerPartition returns one record for each partition of topic, placed with
// ManualPartition, with values "<label>-p<partition>".
func (e *tenv) onePerPartition(topic, label string) []transport.Message {
	return e.perPartition(topic, label, 1)
}

// perPartition returns k records for each partition of topic, placed with
// ManualPartition, with values "<label>-p<partition>-r<i>", ordered
// partition by partition.
func (e *tenv) perPartition(topic, label string, k int) []transport.Message {
	msgs := make([]transport.Message, 0, k*e.parts)
	for p := range e.parts {
		for i := range k {
			v := fmt.Sprintf("%s-p%d", label, p)
			if k > 1 {
				v = fmt.Sprintf("%s-r%d", v, i)
			}
			msgs = append(msgs, transport.Message{
				Topic: topic, Partition: int32(p), ManualPartition: true,
				Key: fmt.Sprintf("key-%d", i), Value: []byte(v),
			})
		}
	}
	return msgs
}

// mustProduce calls Produce and requires it to succeed with one returned message
// per input.
func mustProduce(t testing.TB, tr transport.Transport, msgs ...transport.Message) []transport.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	out, err := tr.Produce(ctx, msgs...)
	require.NoError(t, err, "Produce of %d records", len(msgs))
	require.Len(t, out, len(msgs), "Produce must return one message per record given")
	return out
}

// mustSubscribe calls Subscribe, requires it to succeed and closes the consumer
// when t ends.
func mustSubscribe(t testing.TB, tr transport.Transport, s transport.Subscription) transport.Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := tr.Subscribe(ctx, s)
	require.NoError(t, err, "Subscribe(%+v)", s)
	require.NotNil(t, c, "Subscribe returned a nil Consumer and no error")
	t.Cleanup(func() { closeWithin(t, "Consumer.Close (suite cleanup)", c.Close, true) })
	return c
}

// mustCommit calls Commit and requires it to succeed.
func mustCommit(t testing.TB, c transport.Consumer, msgs ...transport.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	require.NoError(t, c.Commit(ctx, msgs...), "Commit of %s", describe(msgs))
}

// errPollTimeout reports that the polling helpers' overall deadline passed.
var errPollTimeout = errors.New("deadline passed")

// pollUntil polls c with short per-Poll deadlines until it has returned at
// least n records in total, and returns them in the order received. It fails
// t when timeout passes first or Poll fails with anything but its own
// deadline. Empty polls are expected and skipped.
func pollUntil(t testing.TB, c transport.Consumer, n int, timeout time.Duration) []transport.Message {
	t.Helper()
	got, err := pollWhile(t.Context(), c, timeout, func(got []transport.Message) bool { return len(got) < n })
	if err != nil {
		t.Fatalf("polled %d of %d records: %v; got %s", len(got), n, err, describe(got))
	}
	return got
}

// pollNone polls c for quietPeriod and fails t if any record arrives.
func pollNone(t testing.TB, c transport.Consumer) {
	t.Helper()
	got, err := pollWhile(t.Context(), c, quietPeriod, func(got []transport.Message) bool { return len(got) == 0 })
	if len(got) > 0 {
		t.Errorf("expected no more records, got %s", describe(got))
	}
	if err != nil && !errors.Is(err, errPollTimeout) {
		t.Errorf("Poll: %v", err)
	}
}

// pollWhile polls c with per-Poll deadlines of pollSlice while more(got)
// holds. It returns an error wrapping errPollTimeout when timeout passes
// first, or the first error of Poll other than the expiry of its own per-Poll
// deadline. Records are returned even with an error.
func pollWhile(ctx context.Context, c transport.Consumer, timeout time.Duration, more func([]transport.Message) bool) ([]transport.Message, error) {
	deadline := time.Now().Add(timeout)
	var got []transport.Message
	for more(got) {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return got, fmt.Errorf("%w after %v", errPollTimeout, timeout)
		}
		pctx, cancel := context.WithTimeout(ctx, min(pollSlice, remaining))
		msgs, err := c.Poll(pctx)
		expired := pctx.Err() != nil
		cancel()
		got = append(got, msgs...)
		if err != nil {
			if expired && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return got, fmt.Errorf("Poll: %w", err)
		}
	}
	return got, nil
}

// drainGroup polls all members concurrently until they have returned n
// records between them, then polls each for quietPeriod more to catch
// duplicates, and returns what each member received, in order. With
// commitEach, each member commits every non-empty Poll result at once.
func drainGroup(t testing.TB, members []transport.Consumer, n int, commitEach bool) [][]transport.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	var (
		total atomic.Int64
		wg    sync.WaitGroup
		got   = make([][]transport.Message, len(members))
		errs  = make([]error, len(members))
	)
	for i, c := range members {
		wg.Go(func() {
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, pollSlice)
				msgs, err := c.Poll(pctx)
				expired := pctx.Err() != nil
				pcancel()
				got[i] = append(got[i], msgs...)
				if len(msgs) > 0 && commitEach {
					cctx, ccancel := context.WithTimeout(t.Context(), waitTimeout)
					cerr := c.Commit(cctx, msgs...)
					ccancel()
					if cerr != nil {
						errs[i] = fmt.Errorf("Commit: %w", cerr)
						cancel()
						return
					}
				}
				if total.Add(int64(len(msgs))) >= int64(n) {
					cancel()
				}
				if err != nil && !(expired && errors.Is(err, context.DeadlineExceeded)) && ctx.Err() == nil {
					errs[i] = fmt.Errorf("Poll: %w", err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "member %d (received %s)", i, describe(got[i]))
	}
	if total.Load() < int64(n) {
		var b strings.Builder
		for i := range got {
			fmt.Fprintf(&b, "\n  member %d: %s", i, describe(got[i]))
		}
		t.Fatalf("members received %d of %d records within %v:%s", total.Load(), n, waitTimeout, b.String())
	}
	for i, c := range members {
		wg.Go(func() {
			extra, err := pollWhile(t.Context(), c, quietPeriod, func(got []transport.Message) bool { return true })
			got[i] = append(got[i], extra...)
			if !errors.Is(err, errPollTimeout) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "member %d", i)
	}
	return got
}

// requireTopicHolds reads topic from its start with a new group and requires
// its records to have exactly the values want, in any order.
func requireTopicHolds(t testing.TB, e *tenv, topic string, want ...[]byte) {
	t.Helper()
	c := mustSubscribe(t, e.tr, e.sub(transport.StartEarliest, topic))
	var got [][]byte
	for _, m := range readToEnd(t, e, c, topic) {
		got = append(got, m.Value)
	}
	require.ElementsMatch(t, want, got, "records held by topic %s", topic)
}

// readToEnd returns the records c (which reads topic and nothing else)
// receives up to the current end of every partition of topic, in the order
// received. It appends one marker record to each partition and polls until
// all markers are seen: a partition is delivered in offset order, so every
// record before its marker has been seen by then. Markers are left out of the
// result.
func readToEnd(t testing.TB, e *tenv, c transport.Consumer, topic string) []transport.Message {
	t.Helper()
	const prefix = "rpctest-marker-"
	markers := e.onePerPartition(topic, prefix+e.name("m"))
	mustProduce(t, e.tr, markers...)
	isMarker := func(m transport.Message) bool { return bytes.HasPrefix(m.Value, []byte(prefix)) }
	got, err := pollWhile(t.Context(), c, waitTimeout, func(got []transport.Message) bool {
		seen := 0
		for _, m := range got {
			if isMarker(m) {
				seen++
			}
		}
		return seen < len(markers)
	})
	require.NoError(t, err, "reading topic %s up to the markers appended to it (got %s)", topic, describe(got))
	var records []transport.Message
	for _, m := range got {
		if !isMarker(m) {
			records = append(records, m)
		}
	}
	return records
}

// recordID identifies a record.
type recordID struct {
	topic     string
	partition int32
	offset    int64
}

func recordIDOf(m transport.Message) recordID { return recordID{m.Topic, m.Partition, m.Offset} }

// deliveredAgainst sorts got against want by topic, partition and
// offset: the records of got that repeat one before them (dups), that want
// does not hold (extra), and the records of want that got does not hold
// (missing). same, when not nil, is called with each record of want and
// the first record of got that matches it.
func deliveredAgainst(want, got []transport.Message, same func(w, m transport.Message)) (dups, extra, missing []transport.Message) {
	wantBy := make(map[recordID]transport.Message, len(want))
	for _, m := range want {
		wantBy[recordIDOf(m)] = m
	}
	seen := make(map[recordID]int, len(got))
	for _, m := range got {
		k := recordIDOf(m)
		seen[k]++
		w, ok := wantBy[k]
		switch {
		case !ok:
			extra = append(extra, m)
		case seen[k] > 1:
			dups = append(dups, m)
		case same != nil:
			same(w, m)
		}
	}
	for _, m := range want {
		if seen[recordIDOf(m)] == 0 {
			missing = append(missing, m)
		}
	}
	return dups, extra, missing
}

// duplicatedOnly returns how many records of got are copies of ones seen
// before, when got holds every record of want and nothing else; otherwise
// (a record missing or unexpected) 0.
func duplicatedOnly(want, got []transport.Message) int {
	dups, extra, missing := deliveredAgainst(want, got, nil)
	if len(extra)+len(missing) > 0 {
		return 0
	}
	return len(dups)
}

// requireExactlyOnce requires got to hold each record of want once and
// nothing else, matching by topic, partition and offset, and requires the
// matched records to carry the same value.
func requireExactlyOnce(t testing.TB, want, got []transport.Message) {
	t.Helper()
	dups, extra, missing := deliveredAgainst(want, got, func(w, m transport.Message) {
		k := recordIDOf(m)
		require.Equal(t, string(w.Value), string(m.Value), "value of %s/%d@%d", k.topic, k.partition, k.offset)
	})
	if len(dups)+len(extra)+len(missing) > 0 {
		t.Fatalf("records not delivered exactly once:\n  duplicated: %s\n  unexpected: %s\n  missing: %s",
			describe(dups), describe(extra), describe(missing))
	}
}

// requireOffsetOrder requires got, the records one consumer received in
// order, to be in strictly increasing offset order per partition.
func requireOffsetOrder(t testing.TB, got []transport.Message) {
	t.Helper()
	type tp struct {
		topic     string
		partition int32
	}
	last := make(map[tp]int64)
	for _, m := range got {
		k := tp{m.Topic, m.Partition}
		if prev, ok := last[k]; ok && m.Offset <= prev {
			t.Fatalf("%s/%d: offset %d delivered after offset %d; records of a partition must come in offset order (got %s)",
				m.Topic, m.Partition, m.Offset, prev, describe(got))
		}
		last[k] = m.Offset
	}
}

// partitionsOf returns the sorted distinct partitions of msgs.
func partitionsOf(msgs []transport.Message) []int32 {
	var ps []int32
	for _, m := range msgs {
		if !slices.Contains(ps, m.Partition) {
			ps = append(ps, m.Partition)
		}
	}
	slices.Sort(ps)
	return ps
}

// describe formats msgs compactly for failure messages.
func describe(msgs []transport.Message) string {
	if len(msgs) == 0 {
		return "[]"
	}
	const most = 20
	var b strings.Builder
	fmt.Fprintf(&b, "%d records [", len(msgs))
	for i, m := range msgs {
		if i == most {
			fmt.Fprintf(&b, " ...%d more", len(msgs)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		v := string(m.Value)
		if len(v) > 32 {
			v = fmt.Sprintf("%s...(%d bytes)", v[:32], len(m.Value))
		}
		fmt.Fprintf(&b, "%s/%d@%d %q", m.Topic, m.Partition, m.Offset, v)
	}
	b.WriteString("]")
	return b.String()
}

// isClosed reports whether err wraps transport.ErrClosed.
func isClosed(err error) bool { return errors.Is(err, transport.ErrClosed) }

// pollResult is the outcome of a Poll run in another goroutine.
type pollResult struct {
	msgs []transport.Message
	err  error
}

// pollInBackground starts a goroutine that polls c with ctx until Poll
// returns records or an error (empty results are skipped), and returns the
// channel that receives the outcome. started is closed just before the first
// Poll. The goroutine ends when ctx does, at the latest.
func pollInBackground(ctx context.Context, c transport.Consumer) (started <-chan struct{}, result <-chan pollResult) {
	s := make(chan struct{})
	r := make(chan pollResult, 1)
	go func() {
		close(s)
		for {
			msgs, err := c.Poll(ctx)
			if err != nil || len(msgs) > 0 {
				r <- pollResult{msgs, err}
				return
			}
		}
	}()
	return s, r
}

// awaitPoll waits up to waitTimeout for a background Poll's outcome and fails
// t, naming what, when there is none.
func awaitPoll(t testing.TB, result <-chan pollResult, what string) pollResult {
	t.Helper()
	select {
	case r := <-result:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("%s: Poll blocked in another goroutine did not return within %v", what, waitTimeout)
		return pollResult{}
	}
}
