package disklog

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreak5MetaDamagedMiddleEntryKeepsTheRest: one flipped byte in an
// entry in the middle of meta.log (a bad sector, a bit rot) must cost that
// entry only. Bug: meta.load treated the first entry failing its CRC as a
// torn tail and TRUNCATED meta.log there, so every later topic and commit
// (CRC-valid, acknowledged and fsynced) was erased from disk for good: a
// topic created after the damage vanished with its partitions' logs, and
// every group fell back to older offsets or none. Segment damage in the
// middle is set aside, never erased; the metadata must not be worse off. A
// frame whose length is intact and that is followed by valid frames is
// damage, not a torn write: it is skipped (and reported), and the file is
// kept as it is.
func TestBreak5MetaDamagedMiddleEntryKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, Options{Sync: SyncAlways})
	require.NoError(t, d.AddTopics([]TopicSpec{{"a", 1}}))
	require.NoError(t, d.Commit("g", []Commit{{Topic: "a", Offset: 5}})) // the entry damaged below
	require.NoError(t, d.AddTopics([]TopicSpec{{"b", 2}}))
	require.NoError(t, d.Commit("g", []Commit{{Topic: "a", Offset: 7}}))
	require.NoError(t, d.Commit("h", []Commit{{Topic: "b", Partition: 1, Offset: 3}}))
	require.NoError(t, d.Close())

	path := filepath.Join(dir, "meta.log")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	second := frameHeader + int(binary.BigEndian.Uint32(data))
	data[second+frameHeader+2] ^= 0x40 // inside the second entry's payload
	require.NoError(t, os.WriteFile(path, data, 0o644))

	var logs bytes.Buffer
	d2 := open(t, dir, Options{Sync: SyncAlways, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	assert.Equal(t, []TopicSpec{{"a", 1}, {"b", 2}}, d2.Topics(), "a topic recorded after the damaged entry is lost")
	c := d2.Commits()
	assert.Equal(t, []Commit{{"a", 0, 7}}, c["g"], "a commit recorded after the damaged entry is lost")
	assert.Equal(t, []Commit{{"b", 1, 3}}, c["h"], "a commit recorded after the damaged entry is lost")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), st.Size(), "meta.log was cut at the damage: valid later entries erased from disk")
	assert.Contains(t, logs.String(), "damaged", "the damage is reported")

	// And it stays so: written on and read again.
	require.NoError(t, d2.Commit("h", []Commit{{Topic: "b", Partition: 1, Offset: 4}}))
	require.NoError(t, d2.Close())
	d3 := open(t, dir, Options{Sync: SyncAlways})
	assert.Equal(t, []TopicSpec{{"a", 1}, {"b", 2}}, d3.Topics())
	assert.Equal(t, []Commit{{"b", 1, 4}}, d3.Commits()["h"])
}

// TestBreak5MetaZeroedTailIsCut: the tail of meta.log zero-filled (what a
// machine crash can leave) is cut at once, not skipped 8 bytes at a time
// as if each zero frame were a damaged entry in the middle.
func TestBreak5MetaZeroedTailIsCut(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, Options{Sync: SyncAlways})
	require.NoError(t, d.AddTopics([]TopicSpec{{"a", 1}}))
	require.NoError(t, d.Close())
	path := filepath.Join(dir, "meta.log")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	good := len(data)
	require.NoError(t, os.WriteFile(path, append(data, make([]byte, 4096)...), 0o644))
	var logs bytes.Buffer
	d2 := open(t, dir, Options{Sync: SyncAlways, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	assert.Equal(t, []TopicSpec{{"a", 1}}, d2.Topics())
	assert.NotContains(t, logs.String(), "skipped a damaged entry")
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(good), st.Size())
}
