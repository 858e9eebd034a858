package memory

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/disklog"
)

// TestBreak5CraftedMetaTopicsAreRefusedNotTrusted: meta.log's topic
// entries were trusted blindly at start. A CRC-valid entry (a damaged or
// hand-edited meta.log, a data dir copied from elsewhere) with an absurd
// partition count made NewDurable panic in make() (or, with a count just
// under the allocator's limit, try to build 2^40 partitions and eat the
// machine), so kafka-rest could not start at all; and a topic name such as
// "../../outside" is joined into paths, so recovery read, TRUNCATED as a
// "torn tail" and then appended to *.log files outside the data dir. The
// broker never creates such topics; at start they must be reported and
// skipped, and the rest of the data dir served.
func TestBreak5CraftedMetaTopicsAreRefusedNotTrusted(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	// A file outside the data dir that recovery must not touch.
	outside := filepath.Join(root, "victim", "0")
	require.NoError(t, os.MkdirAll(outside, 0o755))
	victim := filepath.Join(outside, "00000000000000000000.log")
	require.NoError(t, os.WriteFile(victim, []byte("not a segment, somebody's file"), 0o644))

	d, err := disklog.Open(dir, disklog.Options{Sync: disklog.SyncNever, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, d.AddTopics([]disklog.TopicSpec{{Name: "ok", Partitions: 2}, {Name: "huge", Partitions: 1 << 61}, {Name: "../../victim", Partitions: 1}}))
	require.NoError(t, d.Close())

	var b *Broker
	require.NotPanics(t, func() {
		var err error
		b, err = NewDurable(dir, WithLogger(quietLogger()))
		require.NoError(t, err)
	}, "a crafted partition count crashes the start")
	if b != nil {
		defer b.Close()
		assert.Equal(t, map[string]int32{"ok": 2}, b.Topics(), "only valid topics are served")
	}
	data, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "not a segment, somebody's file", string(data), "recovery truncated a file outside the data dir")
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
