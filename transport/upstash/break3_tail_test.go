package upstash

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// break3: the client believes a topic of up to WithMaxPartitions (default
// 10,000) partitions and Tail accepts one, but its Poll names every
// partition in one POST /fetch, and our own server refuses a fetch naming
// more than 1000 (restserver.DefaultFetchMaxPartitions) with a 400. A Tail
// of a legitimate 1500-partition topic on resttest therefore never reads a
// record: every Poll fails with the server's 400.
func TestBreak3TailOfManyPartitionsAgainstOwnServer(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("wide", 1500)}})
	tr := newTestTransport(t, srv.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tl, err := tr.Tail(ctx, "wide")
	require.NoError(t, err, "the client accepts up to %d partitions", DefaultMaxPartitions)
	defer tl.Close()
	_, err = tr.Produce(ctx, transport.Message{Topic: "wide", Partition: 1234, ManualPartition: true, Value: []byte("v")})
	require.NoError(t, err)
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	defer pcancel()
	got, err := tl.Poll(pctx)
	require.NoError(t, err, "a Tail's Poll against our own server")
	require.Len(t, got, 1)
}
