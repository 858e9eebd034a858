package disklog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// segmentsOpen counts the process's open files under dir/logs.
func segmentsOpen(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, filepath.Join(dir, "logs")+"/") {
			n++
		}
	}
	return n
}

// TestRollKeepsOneFileOpen: a log that rolls to a new segment holds one
// file open after the append, under every policy. With SyncInterval the
// old segment's file (fsynced by the roll) stayed open until the next
// interval's round, so logs rolling within one interval held two files
// each, past the one per partition that kafka-rest's file budget counts.
func TestRollKeepsOneFileOpen(t *testing.T) {
	for _, o := range []Options{
		{Sync: SyncAlways, SegmentBytes: 1},
		{Sync: SyncInterval, Interval: time.Hour, SegmentBytes: 1},
		{Sync: SyncNever, SegmentBytes: 1},
	} {
		t.Run(o.Sync.String(), func(t *testing.T) {
			dir := t.TempDir()
			d := open(t, dir, o)
			const logsN = 5
			for p := range int32(logsN) {
				l, _ := collect(t, d, "t", p)
				for i := range 3 {
					seq, err := l.Append(msgs(i, 1), time.Now())
					require.NoError(t, err)
					require.NoError(t, l.Sync(seq))
				}
				require.Len(t, l.segs, 3, "every append rolls")
			}
			assert.Equal(t, logsN, segmentsOpen(t, dir))
		})
	}
}
