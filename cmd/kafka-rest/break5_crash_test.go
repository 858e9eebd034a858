//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// offsetsOf returns a partition's earliest and latest offsets.
func offsetsOf(t *testing.T, url, topic string, part int32) (int64, int64) {
	t.Helper()
	var out [2]int64
	for i, which := range []string{"earliest", "latest"} {
		status, body := call("POST", url+"/offsets/"+which, fmt.Sprintf(`{"topic":%q,"partition":%d}`, topic, part))
		require.Equal(t, http.StatusOK, status, string(body))
		var tpo []produced
		require.NoError(t, json.Unmarshal(body, &tpo))
		require.Len(t, tpo, 1)
		out[i] = tpo[0].Offset
	}
	return out[0], out[1]
}

// TestBreak5KillDuringRollsAndRetention: SIGKILL kafka-rest at random
// moments while producers fill 16 MiB segments fast enough that segments
// roll and retention (2 MiB) deletes whole segments all the time, under
// each fsync policy, four times. After every restart: the high watermark
// is past every acknowledged offset and never goes back, every
// acknowledged record still retained reads back as written, and the
// retained offsets are dense.
func TestBreak5KillDuringRollsAndRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 150 MiB")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	policies := []string{"never", "always", "interval=20ms", "never"}
	pad := strings.Repeat("p", 32<<10)
	var (
		mu      sync.Mutex
		acked   = map[int64]string{} // offset → value prefix
		maxAck  int64                // highest acknowledged offset
		lastHW  int64
		reqs    atomic.Int64
		prefixN atomic.Int64
	)
	maxAck = -1
	for cycle, pol := range policies {
		c := startChild(t, true, "--addr", addr, "--data-dir", dir, "--fsync", pol, "--topics", "big:1",
			"--retention-bytes", fmt.Sprint(2<<20), "--retention-records", "10000000", "--max-message-bytes", fmt.Sprint(1<<20))
		earliest, latest := offsetsOf(t, c.url, "big", 0)
		mu.Lock()
		require.Greater(t, latest, maxAck, "cycle %d (%s): the high watermark %d is not past the last acknowledged offset %d", cycle, pol, latest, maxAck)
		require.GreaterOrEqual(t, latest, lastHW, "cycle %d: the high watermark went back", cycle)
		got := fetchAll(t, c.url, "big", 0)
		for off := earliest; off < latest; off++ {
			v, ok := got[off]
			require.True(t, ok, "cycle %d: offset %d missing from the retained run %d..%d", cycle, off, earliest, latest)
			if want, ok := acked[off]; ok {
				require.True(t, strings.HasPrefix(v, want+"|"), "cycle %d: offset %d holds %.30q, acknowledged as %q", cycle, off, v, want)
			}
		}
		for off := range acked {
			if off < earliest {
				delete(acked, off) // retention's to drop
			}
		}
		lastHW = latest
		mu.Unlock()
		if cycle == len(policies)-1 {
			break
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					var b strings.Builder
					vals := make([]string, 8)
					b.WriteString("[")
					for j := range vals {
						vals[j] = fmt.Sprintf("c%d-w%d-%d", cycle, w, prefixN.Add(1))
						if j > 0 {
							b.WriteString(",")
						}
						fmt.Fprintf(&b, `{"value":"%s|%s"}`, vals[j], pad)
					}
					b.WriteString("]")
					status, body := call("POST", c.url+"/produce/big", b.String())
					if status != http.StatusOK {
						return // killed
					}
					var metas []produced
					if json.Unmarshal(body, &metas) != nil || len(metas) != len(vals) {
						return
					}
					mu.Lock()
					for j, m := range metas {
						acked[m.Offset] = vals[j]
						maxAck = max(maxAck, m.Offset)
					}
					mu.Unlock()
					reqs.Add(1)
				}
			}()
		}
		// 80 to 180 requests of 256 KiB: 20 to 45 MiB, so one to three rolls
		// and deletions, killed at a random point.
		target := reqs.Load() + 80 + rand.Int64N(100)
		waitUntil(t, 120*time.Second, func() bool { return reqs.Load() >= target }, "produces acknowledged")
		c.kill()
		close(stop)
		wg.Wait()
	}
	t.Logf("%d produce requests acknowledged across %d SIGKILLs; final high watermark %d", reqs.Load(), len(policies)-1, lastHW)
}

// TestBreak5RetentionAgeKeepsHighWatermark: with a retention age so short
// that every record is expired at start, the partition's next offset must
// still continue after the last one acknowledged (offsets never reused),
// restart after restart.
func TestBreak5RetentionAgeKeepsHighWatermark(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	next := int64(0)
	for cycle := range 3 {
		c := startChild(t, true, "--addr", addr, "--data-dir", dir, "--topics", "t:1", "--retention-age", "1ms")
		_, latest := offsetsOf(t, c.url, "t", 0)
		require.Equal(t, next, latest, "cycle %d: the next offset after a restart", cycle)
		for range 3 {
			status, body := call("POST", c.url+"/produce/t", `[{"value":"a"},{"value":"b"}]`)
			require.Equal(t, http.StatusOK, status, string(body))
			var metas []produced
			require.NoError(t, json.Unmarshal(body, &metas))
			require.Equal(t, next, metas[0].Offset, "cycle %d", cycle)
			next += 2
		}
		c.kill()
	}
}
