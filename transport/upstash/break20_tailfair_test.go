package upstash

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak20TailDoesNotStarveLaterPartitions: a /fetch answer is capped
// (WithFetchMaxBytes; by default 16 MiB, 1 MiB per partition) and the
// server fills it in the order the fetch names the partitions. A Tail that
// always named them in partition order never read partition 1 while
// partition 0 kept a backlog larger than one answer: under a sustained
// load on the first partitions (or while catching up a large backlog), the
// records of the others waited without bound. Kafka's consumer rotates the
// order of the partitions it fetches for the same reason; the Tail does
// too, so every partition with records is read within a few polls.
func TestBreak20TailDoesNotStarveLaterPartitions(t *testing.T) {
	const backlog = 200
	// A 1-byte cap: each answer holds one record (the first always comes).
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithPartitions(4)},
		server: []restserver.Option{restserver.WithFetchMaxBytes(1)},
	})
	tr := newTestTransport(t, s.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := tr.Produce(ctx, transport.Message{Topic: "busy", Value: []byte("make the topic")})
	require.NoError(t, err)

	c, err := tr.Tail(ctx, "busy")
	require.NoError(t, err)
	defer c.Close()

	batch := make([]transport.Message, backlog)
	for i := range batch {
		batch[i] = transport.Message{Topic: "busy", Partition: 0, ManualPartition: true, Value: fmt.Appendf(nil, "p0-%d", i)}
	}
	_, err = tr.Produce(ctx, batch...)
	require.NoError(t, err)
	_, err = tr.Produce(ctx, transport.Message{Topic: "busy", Partition: 3, ManualPartition: true, Value: []byte("p3")})
	require.NoError(t, err)

	// Four partitions: with the order rotated, partition 3 comes first
	// within four fetches. 20 polls leave room; without rotation it takes
	// the 201st.
	const polls = 20
	for i := range polls {
		msgs, err := c.Poll(ctx)
		require.NoError(t, err)
		for _, m := range msgs {
			if m.Partition == 3 {
				t.Logf("partition 3's record came with poll %d", i+1)
				return
			}
		}
	}
	t.Fatalf("partition 3's record was not read in %d polls while partition 0 had a backlog of %d records: the tail starves later partitions", polls, backlog)
}
