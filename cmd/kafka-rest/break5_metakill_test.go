//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBreak5KillDuringMetaCompaction: many groups commit ever higher
// offsets with long names, so that meta.log (compacted past 1 MiB) is
// rewritten every couple of seconds; kafka-rest is SIGKILLed at random
// moments, under --fsync always and never in turn. After each restart
// every group's committed offset is at least its last acknowledged commit
// and at most its last one sent. (An attack that failed: kept as a guard.)
func TestBreak5KillDuringMetaCompaction(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGKILL loop")
	}
	const groups = 24
	dir, addr := t.TempDir(), freeAddr(t)
	name := func(g int) string { return fmt.Sprintf("g%02d-%s", g, strings.Repeat("x", 180)) }
	var acked, sent [groups]atomic.Int64
	for g := range groups {
		acked[g].Store(-1)
	}
	compactions := 0
	for cycle, pol := range []string{"never", "always", "never", "always", "never"} {
		c := startChild(t, true, "--addr", addr, "--data-dir", dir, "--fsync", pol, "--topics", "t:1")
		for g := range groups {
			status, body := call("POST", c.url+"/committed/"+name(g)+"/check", `{"topic":"t","partition":0}`)
			require.Equal(t, http.StatusOK, status, string(body))
			var com []produced
			require.NoError(t, json.Unmarshal(body, &com))
			require.Len(t, com, 1)
			if a := acked[g].Load(); a >= 0 {
				require.GreaterOrEqual(t, com[0].Offset, a, "cycle %d (%s): group %d lost its acknowledged commit", cycle, pol, g)
				require.LessOrEqual(t, com[0].Offset, sent[g].Load(), "cycle %d: group %d", cycle, g)
			}
		}
		if cycle == 4 {
			break
		}
		st0, _ := os.Stat(filepath.Join(dir, "meta.log"))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					g := (w + 4*i) % groups
					select {
					case <-stop:
						return
					default:
					}
					if i < groups/4 {
						status, _ := call("POST", c.url+"/consume/"+name(g)+"/i", `{"topic":"t","timeout":10}`)
						if status != http.StatusOK {
							return
						}
					}
					off := sent[g].Load() + 1
					sent[g].Store(off)
					status, _ := call("POST", c.url+"/commit/"+name(g)+"/i", fmt.Sprintf(`{"topic":"t","partition":0,"offset":%d}`, off))
					if status != http.StatusOK {
						return
					}
					acked[g].Store(off)
				}
			}()
		}
		var total atomic.Int64
		deadline := time.Now().Add(time.Duration(1500+rand.IntN(2500)) * time.Millisecond)
		waitUntil(t, 30*time.Second, func() bool {
			var s int64
			for g := range groups {
				s += sent[g].Load()
			}
			total.Store(s)
			return time.Now().After(deadline)
		}, "commits running")
		c.kill()
		close(stop)
		wg.Wait()
		if st, err := os.Stat(filepath.Join(dir, "meta.log")); err == nil && st0 != nil && !os.SameFile(st0, st) {
			compactions++
		}
		t.Logf("cycle %d (%s): %d commits sent so far", cycle, pol, total.Load())
	}
	t.Logf("meta.log was rewritten (compacted) in %d of 4 cycles", compactions)
}
