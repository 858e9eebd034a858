package rpc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// The dedup reader over REST (transport/upstash against the project's REST
// server, a group consumer reading with POST /consume) keeps pace with a
// group writing markers faster than one poll a second, both in large
// produces and in many small ones (as servers write them, one per reply),
// with replies near maxMarkerReply.
func TestBreak19DedupReaderKeepsPaceOverREST(t *testing.T) {
	for _, tc := range []struct {
		name    string
		writers int // concurrent producers
		per     int // markers per produce
	}{
		{"large produces", 1, 500},
		{"single-marker produces", 32, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := resttest.Start(t, resttest.Config{})
			tr, err := upstash.New(upstash.WithURL(rs.URL))
			require.NoError(t, err)
			t.Cleanup(func() { tr.Close() })
			s, _ := followingReaderOn(t, tr, "pace", WithDedup(1_000_000, 10*time.Minute))
			ctx := context.Background()

			value := []byte(strings.Repeat("v", 800))
			reply := &transport.Message{Topic: "replies", Value: value, Headers: []transport.Header{{Key: "rpc-status", Value: "ok"}}}
			// For 1.5 s, the writers write paceRate markers a second in all
			// (one REST produce each at a time): five polls' worth a
			// second, which the reader read one of. Not as fast as they
			// can: a REST produce of many markers is written faster than
			// a consume reads them back (265,000 in 1.5 s without -race),
			// faster than a group of servers writes them.
			const paceRate = 5000
			every := time.Duration(float64(time.Second) * float64(tc.per*tc.writers) / paceRate)
			deadline := time.Now().Add(1500 * time.Millisecond)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				written []string
			)
			for w := range tc.writers {
				wg.Go(func() {
					tick := time.NewTicker(every)
					defer tick.Stop()
					batch := make([]transport.Message, 0, tc.per)
					for n := 0; time.Now().Before(deadline); n++ {
						<-tick.C
						batch = batch[:0]
						var last string
						for i := range tc.per {
							last = fmt.Sprintf("req-%d-%d-%d", w, n, i)
							batch = append(batch, markerFor(s.cfg.dedupTopic, "other-instance", last, reply))
						}
						if _, err := tr.Produce(ctx, batch...); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						written = append(written, last)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			total := len(written) * tc.per
			t.Logf("%d markers written in 1.5 s (%d/s)", total, total*2/3)
			start := time.Now()
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, id := range written {
					if !s.dedup.has(id) {
						return false
					}
				}
				return true
			}, 3*time.Second, 10*time.Millisecond, "the reader lags behind the markers written while it follows")
			t.Logf("caught up %v after the last write", time.Since(start))
		})
	}
}
