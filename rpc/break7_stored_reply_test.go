package rpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak7StoredReplyResentAsSent: a request delivered again is answered
// with the stored reply exactly as first sent (no dedup header of the
// marker, which shares the reply's header array, shows in it), by the same
// server and by a new one that learned it from the dedup topic, for a
// reply to an unpinned and to a pinned partition (whose marker has a fourth
// header, appended after a copy).
func TestBreak7StoredReplyResentAsSent(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		t.Run(map[bool]string{false: "unpinned", true: "pinned"}[pinned], func(t *testing.T) {
			b := newBroker(t, memory.WithTopic("jobs", 1), memory.WithTopic("replies", 2))
			start := func() context.CancelFunc {
				s, err := rpc.NewServer(b, rpc.WithName("srv"), quiet)
				require.NoError(t, err)
				rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { return n + 1, nil })
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = s.Serve(ctx); close(done) }()
				return func() {
					cancel()
					select {
					case <-done:
					case <-time.After(20 * time.Second):
						t.Error("Serve did not return")
					}
				}
			}
			stop := start()
			c, err := rpc.NewClient(b, rpc.WithName("cli"), rpc.WithReplyTopic("replies"), quiet)
			require.NoError(t, err)
			defer c.Close()
			got, err := rpc.Call[int](t.Context(), c, "jobs", 41)
			require.NoError(t, err)
			require.Equal(t, 42, got)

			ctx := t.Context()
			reqs, err := b.Fetch(ctx, "jobs", 0, 0, 10)
			require.NoError(t, err)
			require.Len(t, reqs, 1)
			again := transport.Message{Topic: "jobs", Key: reqs[0].Key, Value: reqs[0].Value, Headers: reqs[0].Headers}
			id := "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" // the request sent again: a new one, then its copies
			var hs []transport.Header
			for _, h := range again.Headers {
				if h.Key == rpc.HeaderID {
					h.Value = id
				}
				hs = append(hs, h)
			}
			if pinned {
				hs = append(hs, transport.Header{Key: rpc.HeaderReplyPartition, Value: "1"})
			}
			again.Headers = hs
			replies := func(want int) []transport.Message {
				var all []transport.Message
				deadline := time.Now().Add(10 * time.Second)
				for len(all) < want {
					all = all[:0]
					for p := int32(0); p < 2; p++ {
						// Fetch waits for a record: read only a partition that has some.
						if _, latest, err := b.Offsets("replies", p); err != nil || latest == 0 {
							continue
						}
						ms, err := b.Fetch(ctx, "replies", p, 0, 100)
						if err != nil {
							continue
						}
						for _, m := range ms {
							if cid, _ := m.Header(rpc.HeaderCorrelationID); cid == id {
								all = append(all, m)
							}
						}
					}
					if len(all) >= want {
						break
					}
					require.True(t, time.Now().Before(deadline), "%d replies, want %d", len(all), want)
					time.Sleep(5 * time.Millisecond)
				}
				return all
			}
			// The copy goes once the first is answered: one that arrives
			// while the first still runs is not answered on its own (the
			// first's reply is its answer), and the test would see one
			// reply where it waits for two (it did, about 1 run in 12
			// under -race).
			_, err = b.Produce(ctx, again)
			require.NoError(t, err)
			replies(1)
			_, err = b.Produce(ctx, again)
			require.NoError(t, err)
			rs := replies(2)
			require.Len(t, rs, 2)
			if pinned {
				require.Equal(t, int32(1), rs[0].Partition)
			}
			check := func(r transport.Message) {
				t.Helper()
				require.Equal(t, rs[0].Headers, r.Headers, "resent reply's headers")
				require.Equal(t, string(rs[0].Value), string(r.Value))
				require.Equal(t, rs[0].Partition, r.Partition)
				for _, h := range r.Headers {
					require.False(t, strings.Contains(strings.ToLower(h.Key), "dedup"), "a marker header in the reply: %s", h.Key)
				}
			}
			check(rs[1])

			// A new server learns the reply from the dedup topic.
			stop()
			stop = start()
			defer stop()
			_, err = b.Produce(ctx, again)
			require.NoError(t, err)
			rs3 := replies(3)
			require.Len(t, rs3, 3)
			check(rs3[2])
		})
	}
}
