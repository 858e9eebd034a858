package rpctest

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// A Tailer's consumer reads every partition of its topics from their ends as
// of Tail: records produced after Tail returns are delivered, earlier ones
// are not. Tailers are group-free (two tails of a topic each get every
// record), Commit on them is a no-op, and Close makes Poll fail with
// ErrClosed.
func testTail(t *testing.T, e *tenv) {
	tailer, ok := e.tr.(transport.Tailer)
	if !ok {
		t.Skipf("%T does not implement transport.Tailer", e.tr)
	}
	t1, t2 := e.topic(), e.topic() // t2 is first used by Tail
	mustProduce(t, e.tr, e.onePerPartition(t1, "before")...)

	tail := func(topics ...string) transport.Consumer {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		c, err := tailer.Tail(ctx, topics...)
		require.NoError(t, err, "Tail(%v)", topics)
		require.NotNil(t, c, "Tail returned a nil Consumer and no error")
		t.Cleanup(func() { closeWithin(t, "Consumer.Close of a tail (suite cleanup)", c.Close, true) })
		return c
	}
	x := tail(t1, t2)
	y := tail(t1)
	// No wait here: once Tail has returned, positions are fixed.
	after1 := mustProduce(t, e.tr, e.onePerPartition(t1, "after")...)
	after2 := mustProduce(t, e.tr, e.onePerPartition(t2, "after")...)

	gotX := pollUntil(t, x, len(after1)+len(after2), waitTimeout)
	requireExactlyOnce(t, append(slices.Clone(after1), after2...), gotX)
	requireOffsetOrder(t, gotX)
	gotY := pollUntil(t, y, len(after1), waitTimeout)
	requireExactlyOnce(t, after1, gotY)

	mustCommit(t, x, gotX...)
	mustCommit(t, x)
	pollNone(t, x)
	pollNone(t, y)

	closeWithin(t, "Consumer.Close of a tail", x.Close, false)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	msgs, err := x.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed, "Poll of a closed tail")
	require.Empty(t, msgs)
	closeWithin(t, "second Consumer.Close of a tail", x.Close, false)
}
