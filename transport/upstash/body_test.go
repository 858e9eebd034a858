package upstash

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A pooled request body goes back to the pool only when its owner has
// released it and every reader made of it is closed, once each.
func TestSharedBodyHeldByOpenReaders(t *testing.T) {
	s := newSharedBody(16, true)
	s.set(append(s.bytes(), "[1,2,3]"...))
	r1, r2 := s.reader(), s.reader()
	s.release()
	require.Equal(t, int32(2), s.refs.Load(), "the readers still hold it")
	got, err := io.ReadAll(r1)
	require.NoError(t, err)
	require.Equal(t, "[1,2,3]", string(got))
	require.NoError(t, r1.Close())
	require.NoError(t, r1.Close()) // twice: counted once
	require.Equal(t, int32(1), s.refs.Load())
	got, err = io.ReadAll(r2)
	require.NoError(t, err)
	require.Equal(t, "[1,2,3]", string(got), "a reader opened before the release reads the body whole")
	require.NoError(t, r2.Close())
	require.Equal(t, int32(0), s.refs.Load())
}

// Many callers producing at once are coalesced into batches whose bodies,
// like each call's own, are pooled: every record must arrive as sent,
// whatever order the batches complete in, and each caller's answer must be
// its own.
func TestPooledProduceBodiesNotMixed(t *testing.T) {
	s := startServer(t, serverConfig{serve: true, broker: []memory.Option{memory.WithPartitions(1)}})
	tr := newTestTransport(t, s.URL)
	require.True(t, tr.ownClient)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tail, err := tr.Tail(ctx, "pooled")
	require.NoError(t, err)
	defer tail.Close()

	const callers, each = 32, 40
	value := func(c, i int) string {
		return fmt.Sprintf("c%02d-i%03d-%s", c, i, strings.Repeat(string(rune('a'+c%26)), 200+c*13))
	}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				out, err := tr.Produce(ctx, transport.Message{Topic: "pooled", Key: fmt.Sprint(c), Value: []byte(value(c, i))})
				if !assertNoError(t, err) {
					return
				}
				if string(out[0].Value) != value(c, i) {
					t.Errorf("caller %d got back %q", c, out[0].Value[:12])
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for len(seen) < callers*each && ctx.Err() == nil {
		msgs, err := tail.Poll(ctx)
		require.NoError(t, err)
		for _, m := range msgs {
			var c, i int
			_, err := fmt.Sscanf(string(m.Value), "c%02d-i%03d-", &c, &i)
			require.NoError(t, err, "record %q", m.Value)
			require.Equal(t, value(c, i), string(m.Value))
			require.Equal(t, fmt.Sprint(c), m.Key)
			require.False(t, seen[string(m.Value)], "twice: %s", m.Value[:12])
			seen[string(m.Value)] = true
		}
	}
	require.Len(t, seen, callers*each)
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// A pooled body's buffer holds the size asked for, goes back to the pool
// by its capacity's class, and is handed out again for any body of that
// class: bodies of 40 KB and of 500 bytes taken in turn cost no
// allocation (one pool of mixed sizes handed the large body the small
// buffer, dropped for a new one).
func TestSharedBodySizeClasses(t *testing.T) {
	for _, size := range []int{0, 1, 1 << 10, 1<<10 + 1, 5000, 60_000, 1 << 20, 1<<20 + 1, 3 << 20} {
		s := newSharedBody(size, true)
		require.GreaterOrEqual(t, cap(s.bytes()), size, "size %d", size)
		require.Zero(t, len(s.bytes()))
		s.release()
	}
	require.Equal(t, minBodyClass, bodyClassFor(0))
	require.Equal(t, 16, bodyClassFor(1<<16))
	require.Equal(t, 17, bodyClassFor(1<<16+1))
	require.Equal(t, 16, bodyClassOf(1<<16))
	require.Equal(t, 16, bodyClassOf(1<<17-1))
	require.Less(t, bodyClassOf(1000), minBodyClass, "too small to keep")

	allocs := testing.AllocsPerRun(100, func() {
		big := newSharedBody(40_000, true)
		big.set(append(big.bytes(), make([]byte, 40_000)...))
		small := newSharedBody(500, true)
		small.set(append(small.bytes(), make([]byte, 500)...))
		big.release()
		small.release() // the last one put: a pool of mixed sizes hands it out first
	})
	require.Zero(t, allocs)

	// Unpooled (a caller's HTTP client): an ordinary allocation of the
	// size, never put in a pool.
	s := newSharedBody(100, false)
	require.False(t, s.pooled)
	require.Equal(t, 100, cap(s.bytes()))
	s.release()
}
