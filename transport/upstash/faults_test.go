package upstash

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Against a server that answers 503, drops connections before handling and
// stalls, every call succeeds through retries, and nothing is appended or
// delivered twice (these faults strike before the server acts).
func TestFaultsBeforeHandling(t *testing.T) {
	s := startServer(t, serverConfig{
		broker: []memory.Option{memory.WithPartitions(3)},
		faults: &resttest.Faults{Seed: 7, Unavailable: 0.3, Reset: 0.2, Slow: 0.1, SlowDelay: 20 * time.Millisecond},
	})
	tr := newTestTransport(t, s.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	tl, err := tr.Tail(ctx, "jobs")
	require.NoError(t, err)
	defer tl.Close()

	const producers, each = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				if _, err := tr.Produce(ctx, transport.Message{Topic: "jobs", Value: fmt.Appendf(nil, "%d-%d", p, i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(producers*each), s.REST.Stats().Produced, "no record appended twice")

	var want []string
	for p := range producers {
		for i := range each {
			want = append(want, fmt.Sprintf("%d-%d", p, i))
		}
	}
	got := pollN(t, c, len(want))
	assert.ElementsMatch(t, want, values(got), "group consumer")
	require.NoError(t, c.Commit(ctx, got...))
	gotTail := pollN(t, tl, len(want))
	assert.ElementsMatch(t, want, values(gotTail), "tail")

	fs := s.Faults.Stats()
	t.Logf("faults injected: %+v", fs)
	assert.Positive(t, fs.Unavailable+fs.Reset, "the test injected faults")
	require.NoError(t, c.Close())
}

// A lost produce response is retried: the call succeeds, and the record may
// be appended twice (the documented duplicate risk; the rpc layer dedups).
func TestFaultLostProduceResponse(t *testing.T) {
	s := startServer(t, serverConfig{faults: &resttest.Faults{Seed: 3, ResetAfter: 0.3}})
	tr := newTestTransport(t, s.URL)
	const n = 40
	for i := range n {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: fmt.Appendf(nil, "%d", i)})
		require.NoError(t, err)
	}
	appended := s.REST.Stats().Produced
	lost := s.Faults.Stats().ResetAfter
	t.Logf("%d produces, %d responses lost, %d records appended", n, lost, appended)
	assert.Positive(t, lost)
	assert.Equal(t, uint64(n)+uint64(lost), appended, "each lost response costs one duplicate, nothing more")
}
