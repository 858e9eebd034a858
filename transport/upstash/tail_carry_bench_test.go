package upstash

import (
	"context"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkTailPollCarrying measures one PollCarrying of a Tail's
// consumer against the REST server on loopback: one record produced to the
// tailed topic and read back by the same call (an rpc client's request and
// its reply path, without the server in between), carried (one POST /fetch
// with "produce") and not (the Transport told the server ignores the field:
// POST /produce, then POST /fetch). It reports the HTTP requests per call
// and the process's CPU time per call (client and server: one process).
//
//	go test -run '^$' -bench TailPollCarrying -benchmem ./transport/upstash/
func BenchmarkTailPollCarrying(b *testing.B) {
	for _, mode := range []struct {
		name  string
		state int32
	}{{"carried", fetchCarryYes}, {"produce-then-poll", fetchCarryNo}} {
		b.Run(mode.name, func(b *testing.B) {
			s := startServer(b, serverConfig{broker: []memory.Option{memory.WithPartitions(1), memory.WithRetention(10_000, 0)}})
			tr := newTestTransport(b, s.URL)
			ctx := context.Background()
			c, err := tr.Tail(ctx, "calls")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			tr.fetchCarry.Store(mode.state)
			cp := c.(transport.CarryingPoller)
			msgs := []transport.Message{{Topic: "calls", Value: []byte(`{"report":"monthly","rows":1234}`)}}
			var ackErr error
			acked := func(_ []transport.Message, err error) { ackErr = err }
			before := s.REST.Stats().Requests
			cpu0 := testutil.ProcessCPU()
			start := time.Now()
			for b.Loop() {
				got, err := cp.PollCarrying(ctx, msgs, acked)
				if err != nil || ackErr != nil {
					b.Fatal(err, ackErr)
				}
				for len(got) == 0 { // the record may come with the next poll
					if got, err = c.Poll(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			cpu := testutil.ProcessCPU() - cpu0
			elapsed := time.Since(start)
			b.ReportMetric(float64(s.REST.Stats().Requests-before)/float64(b.N), "http-req/call")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/call")
			b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N), "wall-µs/call")
		})
	}
}
