package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The dedup reader, once caught up, follows the topic, pausing between
// reads so that a trickle of markers (this server's own, one a reply) does
// not cost a read each. The pause must not bound how much it reads: it
// read one poll (at most 1,000 records on the embedded broker, 500 over
// REST) a second, so a group handling more requests than that fell behind
// by the difference every second, without end. A partition coming to this
// server then made its sync read the whole backlog (up to the topic's
// retention: a busy hour's markers) within dedupSyncTimeout, or give up and
// run requests that another instance had handled.
func TestDedupReaderKeepsPaceWithABusyTopic(t *testing.T) {
	br, s, _ := followingReader(t, "pace")
	ctx := context.Background()

	// Other instances' markers, 2,000 every 100 ms for a second (20,000 a
	// second), written while the reader follows.
	const rounds, per = 10, 2000
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	batch := make([]transport.Message, 0, per)
	for r := range rounds {
		<-tick.C
		batch = batch[:0]
		for i := range per {
			batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", fmt.Sprintf("req-%d-%d", r, i), nil))
		}
		_, err := br.Produce(ctx, batch...)
		require.NoError(t, err)
	}
	last := fmt.Sprintf("req-%d-%d", rounds-1, per-1)
	// Without a sync: the reader has read them all within two seconds of the
	// last write (it read 1,000 a second, and needed twenty).
	require.Eventually(t, func() bool { return s.dedup.has(last) }, 2*time.Second, 5*time.Millisecond,
		"the reader lags behind the markers written while it follows")
}
