package disklog

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openFiles counts d's logs holding a segment file open.
func openFiles(d *Dir) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.logs {
		if l.file.f != nil {
			n++
		}
	}
	return n
}

// TestMaxOpenClosesLeastRecentlyAppended: with Options.MaxOpen, opening
// one file more closes the file of the log least recently appended to,
// which opens it again at its next append (each log held its file open
// for good, so a data dir with more partitions than the process's file
// limit allows ran out of files).
func TestMaxOpenClosesLeastRecentlyAppended(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, Options{Sync: SyncNever, MaxOpen: 2})
	var logs []*Log
	for p := range int32(3) {
		l, _ := collect(t, d, "t", p)
		logs = append(logs, l)
	}
	at := time.Unix(1_700_000_000, 0)
	for i, p := range []int{0, 1, 2, 0} {
		_, err := logs[p].Append(msgs(i, 1), at.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
	}
	assert.Nil(t, logs[1].file.f, "the least recently appended to is closed")
	assert.NotNil(t, logs[2].file.f)
	assert.NotNil(t, logs[0].file.f)
	assert.Equal(t, 2, openFiles(d))
	require.NoError(t, d.Close())

	d = open(t, dir, Options{Sync: SyncNever})
	for p, want := range [][]int{{0, 3}, {1}, {2}} {
		_, got := collect(t, d, "t", int32(p))
		require.Len(t, got, len(want), "partition %d", p)
		for i, m := range got {
			assert.Equal(t, fmt.Sprint("value-", want[i]), string(m.Value), "partition %d", p)
		}
	}
}

// TestMaxOpenUnderConcurrentAppends: producers append to and sync more
// logs than MaxOpen lets hold a file, concurrently, under each policy and
// with segments rolling: the open files never pass MaxOpen, and every
// record acknowledged is recovered, in order.
func TestMaxOpenUnderConcurrentAppends(t *testing.T) {
	for _, o := range []Options{
		{Sync: SyncAlways, MaxOpen: 3, SegmentBytes: 200},
		{Sync: SyncInterval, Interval: time.Millisecond, MaxOpen: 3, SegmentBytes: 200},
		{Sync: SyncNever, MaxOpen: 1},
	} {
		t.Run(o.Sync.String(), func(t *testing.T) {
			const logsN, producers, appends = 10, 6, 60
			dir := t.TempDir()
			d := open(t, dir, o)
			logs := make([]*Log, logsN)
			locks := make([]sync.Mutex, logsN) // the broker's partition locks
			for p := range logs {
				logs[p], _ = collect(t, d, "t", int32(p))
			}
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				want = make([][]string, logsN) // guarded by locks
				over = 0
			)
			for g := range producers {
				wg.Go(func() {
					for i := range appends {
						p := rand.IntN(logsN)
						locks[p].Lock()
						m := msgs(g*appends+i, 1)
						seq, err := logs[p].Append(m, time.Now())
						if err == nil {
							want[p] = append(want[p], string(m[0].Value))
						}
						locks[p].Unlock()
						if !assert.NoError(t, err) {
							return
						}
						if !assert.NoError(t, logs[p].Sync(seq)) {
							return
						}
						mu.Lock()
						d.mu.Lock()
						if d.open > o.MaxOpen {
							over++
						}
						d.mu.Unlock()
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			assert.Zero(t, over, "times the open files passed MaxOpen")
			assert.LessOrEqual(t, openFiles(d), o.MaxOpen)
			require.NoError(t, d.Close())

			d = open(t, dir, Options{Sync: SyncNever})
			total := 0
			for p := range logsN {
				_, got := collect(t, d, "t", int32(p))
				vals := make([]string, len(got))
				for i, m := range got {
					vals[i] = string(m.Value)
				}
				assert.Equal(t, want[p], vals, "partition %d", p)
				total += len(got)
			}
			assert.Equal(t, producers*appends, total)
		})
	}
}
