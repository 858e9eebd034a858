package upstash

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// break3 (held): records near the 1 MiB limit whose values are control
// bytes (6 bytes each on the wire) and many small records with headers,
// produced by coalesced callers to several partitions, keyed and pinned,
// come back whole through Tail and a group consumer of our own server.
func TestBreak3LargeEscapedAndManySmallRoundTrip(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("big", 3)}})
	tr := newTestTransport(t, srv.URL)
	// The bound only turns a hang into a failure. The work is CPU-bound:
	// ~18 MiB of \u00XX escapes encoded and decoded twice plus 2003
	// produces, about 12 CPU-seconds under -race (mostly the race
	// detector's accounting of the large buffer copies). On a loaded
	// 2-core machine that took 20-38 s (load average 8-12); 20 s failed 6
	// runs in 6 there. Two minutes leaves room without hiding a hang.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tl, err := tr.Tail(ctx, "big")
	require.NoError(t, err)
	defer tl.Close()
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g3", Topics: []string{"big"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer c.Close()

	var msgs []transport.Message
	for p := range 3 {
		msgs = append(msgs, transport.Message{Topic: "big", Partition: int32(p), ManualPartition: true,
			Value: bytes.Repeat([]byte{1}, 1<<20-2048), Headers: []transport.Header{{Key: "h", Value: "\x02\x03"}}})
	}
	for i := range 2000 {
		msgs = append(msgs, transport.Message{Topic: "big", Key: fmt.Sprint(i % 7),
			Headers: []transport.Header{{Key: "a", Value: ""}, {Key: "b", Value: ""}, {Key: "", Value: ""}}})
	}
	errs := make(chan error, len(msgs))
	for i := range msgs {
		go func() { _, err := tr.Produce(ctx, msgs[i]); errs <- err }()
	}
	for range msgs {
		require.NoError(t, <-errs)
	}
	for name, cons := range map[string]transport.Consumer{"tail": tl, "group": c} {
		n := 0
		for n < len(msgs) && ctx.Err() == nil {
			got, err := cons.Poll(ctx)
			require.NoError(t, err, name)
			n += len(got)
		}
		require.Equal(t, len(msgs), n, name)
	}
	require.Zero(t, tr.Stats().DroppedRecords)
}
