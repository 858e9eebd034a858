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
