package rpc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// README, Guarantees (what it does not promise): a reply that arrives
// after its Call gave up is counted as late (Client.Stats().Late). The
// client remembers the last 4,096 calls that gave up, as the README and
// ClientStats say: when more gave up before their replies came (a server
// that stalled, then caught up), the replies to the older ones count as
// Foreign. Every reply is counted once, and the client keeps calling.
func TestLateRepliesBeyondTheClientsMemoryCountAsForeign(t *testing.T) {
	const n = 5000
	b := newBroker(t, memory.WithTopic("slow", 1))
	c, err := rpc.NewClient(b, rpc.WithName("cli"), silent)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	// n calls are written while no server runs, and given up.
	ctx, giveUp := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := rpc.Call[int](ctx, c, "slow", i, rpc.WithTimeout(time.Minute))
			if err == nil {
				t.Error("a call was answered before a server ran")
			}
		})
	}
	require.Eventually(t, func() bool {
		_, latest, err := b.Offsets("slow", 0)
		return err == nil && latest == n
	}, 10*time.Second, 5*time.Millisecond, "every request written")
	giveUp()
	wg.Wait()

	// A server then answers them all, late.
	s, err := rpc.NewServer(b, rpc.WithName("srv"), silent)
	require.NoError(t, err)
	rpc.Handle(s, "slow", func(_ context.Context, i int) (int, error) { return i, nil })
	serveT(t, s)
	require.Eventually(t, func() bool {
		st := c.Stats()
		return st.Late+st.Foreign == n
	}, 10*time.Second, 5*time.Millisecond, "every reply read")
	st := c.Stats()
	require.EqualValues(t, 4096, st.Late)
	require.EqualValues(t, n-4096, st.Foreign)
	got, err := rpc.Call[int](context.Background(), c, "slow", 7, rpc.WithTimeout(10*time.Second))
	require.NoError(t, err)
	require.Equal(t, 7, got)
}
