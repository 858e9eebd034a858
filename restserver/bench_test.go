package restserver_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BenchmarkProduceBatched measures the REST server alone: POST /produce
// with arrays of 100 messages (≈100-byte values, keyed, one header) over
// loopback keep-alive connections, into the embedded broker. One op is one
// HTTP request; msgs/s is the figure to watch (target ≥ 100,000 on a
// 2-core machine).
func BenchmarkProduceBatched(b *testing.B) {
	const batch = 100
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range batch {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"topic":"bench","key":"key-%d","value":"%s","headers":[{"key":"rpc-id","value":"0190d5b2-7c1e-7a55-9c1d-%012d"}]}`,
			i, strings.Repeat("v", 100), i)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())

	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			e := newEnv(b, envConfig{broker: []memory.Option{
				memory.WithTopic("bench", 8), memory.WithRetention(200_000, 0)}})
			tr := &http.Transport{MaxIdleConnsPerHost: conns}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			post := func() error {
				r, err := http.NewRequest("POST", e.url+"/produce", bytes.NewReader(body))
				if err != nil {
					return err
				}
				r.SetBasicAuth(testUser, testPass)
				r.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(r)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				return err
			}
			if err := post(); err != nil { // warm up the connection
				b.Fatal(err)
			}
			before := e.srv.Stats()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			if conns == 1 {
				for b.Loop() {
					if err := post(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(max(1, conns/2)) // ×GOMAXPROCS goroutines
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := post(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			after := e.srv.Stats()
			msgs := after.Produced - before.Produced
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(after.Requests-before.Requests)/float64(b.N), "http-reqs/op")
			b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
		})
	}
}
