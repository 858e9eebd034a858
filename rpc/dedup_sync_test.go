package rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A sync (a partition coming to this server) waits until the dedup reader
// has read every marker written before it. The reader, once caught up,
// pauses a second between polls; a backlog of other instances' markers
// larger than one poll (1,000 records on the embedded broker) must not
// cost that pause for every poll: 10,000 markers took about ten seconds,
// and the sync gave up after five, leaving the window without them.
func TestDedupSyncReadsABacklogLargerThanAPoll(t *testing.T) {
	br, s, dr := followingReader(t, "sync")
	ctx := context.Background()

	// Another instance's markers, written while this reader follows.
	const n = 10_000
	batch := make([]transport.Message, 0, 1000)
	for i := range n {
		batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", fmt.Sprintf("req-%d", i), nil))
		if len(batch) == cap(batch) {
			_, err := br.Produce(ctx, batch...)
			require.NoError(t, err)
			batch = batch[:0]
		}
	}
	start := time.Now()
	require.True(t, dr.sync(ctx), "the sync gave up before the reader read the backlog")
	assert.Less(t, time.Since(start), 3*time.Second)
	for _, id := range []string{"req-0", fmt.Sprintf("req-%d", n-1)} {
		assert.True(t, s.dedup.has(id), "marker %s read before the sync returned", id)
	}
}

// followingReader starts a dedup reader of a server named name, on an
// embedded broker of its own, caught up and following the topic until the
// test ends.
func followingReader(t *testing.T, name string) (*memory.Broker, *Server, *dedupReader) {
	t.Helper()
	br, err := memory.New(memory.WithPartitions(1))
	require.NoError(t, err)
	t.Cleanup(func() { br.Close() })
	s, dr := followingReaderOn(t, br, name)
	return br, s, dr
}

// followingReaderOn is followingReader on tr, with the server's opts.
func followingReaderOn(t *testing.T, tr transport.Transport, name string, opts ...ServerOption) (*Server, *dedupReader) {
	t.Helper()
	opts = append([]ServerOption{WithName(name), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s, err := NewServer(tr, opts...)
	require.NoError(t, err)
	dr, err := startDedupReader(context.Background(), s, s.dedup)
	require.NoError(t, err)
	readCtx, stopReading := context.WithCancel(context.Background())
	dr.run(readCtx)
	t.Cleanup(func() { stopReading(); dr.stop() })
	return s, dr
}
