package kafkabackend_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// TestFetchNotHeldByIdleWaiters: every Fetch of the backend to a broker
// goes over one connection, which the broker answers one request at a
// time. Idle waits (WaitAny on topics nobody writes: idle tailers, such as
// rpc clients' reply readers) must not hold a fetch of a record that is
// there for long. With 1 s long-poll slices and 16 idle waiters a fetch
// queued behind up to 16 s of them (rpctest's CallRightAfterNewClient took
// 17-24 s over kafka-rest); now each slice is 100 ms.
func TestFetchNotHeldByIdleWaiters(t *testing.T) {
	const idle = 16
	topics := map[string]int32{"hot": 1}
	for i := range idle {
		topics[fmt.Sprint("idle", i)] = 1
	}
	c := kafkatest.Start(t, kafkatest.Config{Topics: topics})
	b := c.Backend
	ctx := ctxT(t, 60*time.Second)
	_, err := b.Produce(ctx, transport.Message{Topic: "hot", Value: []byte("x")})
	require.NoError(t, err)

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.WaitAny(wctx, []transport.Offset{{Topic: fmt.Sprint("idle", i)}})
			assert.ErrorIs(t, err, context.Canceled)
		}()
	}
	defer wg.Wait()
	defer stop()

	// The waiters start their long polls within the first fetches below;
	// the slowest of several counts.
	var slowest time.Duration
	for range 5 {
		start := time.Now()
		msgs, err := b.Fetch(ctx, transport.Offset{Topic: "hot"}, 1)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("slowest of 5 fetches beside %d idle waiters: %v", idle, slowest)
	// 16 slices of 100 ms are 1.6 s; 5 s leaves room for a loaded -race
	// run and is far below the 16 s of 1 s slices.
	assert.Less(t, slowest, 5*time.Second, "a fetch queued behind the idle waiters' long polls")
}
