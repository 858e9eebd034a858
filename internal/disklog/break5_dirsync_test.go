package disklog

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreak5NewFilesAreReachableAfterAMachineCrash: with SyncAlways a
// machine crash must lose nothing acknowledged, so every directory entry
// on the path to an acknowledged byte must have been fsynced: a file's
// data fsync does not make its name, or its parent directories' names,
// durable (POSIX; XFS and btrfs do lose them; ext4 mostly hides it).
// Bug: only the partition's dir (for the segment) and the topic's dir (for
// the partition's dir) were fsynced. Nothing fsynced logs/ after
// logs/<topic> was created, nor the data dir after meta.log and logs/
// were created: a power cut after the first acknowledged produce of a new
// topic could lose the topic's whole directory, and on a fresh data dir
// meta.log itself (every topic and commit), fsync or not.
func TestBreak5NewFilesAreReachableAfterAMachineCrash(t *testing.T) {
	var mu sync.Mutex
	synced := map[string]int{}
	old := fsyncDir
	fsyncDir = func(path string) error {
		mu.Lock()
		synced[filepath.Clean(path)]++
		mu.Unlock()
		return old(path)
	}
	t.Cleanup(func() { fsyncDir = old })

	dir := filepath.Join(t.TempDir(), "data")
	d := open(t, dir, Options{Sync: SyncAlways})
	require.NoError(t, d.AddTopics([]TopicSpec{{"t", 1}}))
	l, _ := collect(t, d, "t", 0)
	seq, err := l.Append(msgs(0, 3), time.Now())
	require.NoError(t, err)
	require.NoError(t, l.Sync(seq)) // acknowledged
	mu.Lock()
	defer mu.Unlock()
	for _, p := range []string{
		dir,                                  // meta.log, logs/, LOCK created in it
		filepath.Join(dir, "logs"),           // logs/t created in it
		filepath.Join(dir, "logs", "t"),      // logs/t/0 created in it
		filepath.Join(dir, "logs", "t", "0"), // the segment created in it
	} {
		assert.NotZero(t, synced[p], "directory %s not fsynced after an entry was created in it", p)
	}
}
