package disklog

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreak5LastSegmentDamageIsKeptNotErased: recovery cuts the last
// segment at its first bad batch, as it must for a torn write (a crash in
// the middle of a write: the bytes after the cut never were a record).
// Bug: it cut just the same when what follows is not a torn write but
// valid, acknowledged records: a bit flipped in a batch followed by intact
// batches, or intact batches whose offsets do not match the file's name
// (a segment renamed or restored by hand). Those bytes were truncated away
// for good, though every other kind of damage is set aside (*.damaged) for
// an operator. Now the cut bytes are first saved beside the segment when
// they hold a CRC-valid batch.
func TestBreak5LastSegmentDamageIsKeptNotErased(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, seg string) string // returns the segment's path after
	}{
		{"bit flip before intact batches", func(t *testing.T, seg string) string {
			data, err := os.ReadFile(seg)
			require.NoError(t, err)
			data[frameHeader+batchHeader+2] ^= 0x10 // in the first batch's records
			require.NoError(t, os.WriteFile(seg, data, 0o644))
			return seg
		}},
		{"name does not match the content", func(t *testing.T, seg string) string {
			renamed := filepath.Join(filepath.Dir(seg), segmentName(5))
			require.NoError(t, os.Rename(seg, renamed))
			return renamed
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := open(t, dir, Options{Sync: SyncNever})
			l, _ := collect(t, d, "t", 0)
			for i := range 3 {
				_, err := l.Append(msgs(i*4, 4), time.Now())
				require.NoError(t, err)
			}
			require.NoError(t, d.Close())
			seg := filepath.Join(dir, "logs", "t", "0", segmentName(0))
			orig, err := os.ReadFile(seg)
			require.NoError(t, err)
			seg = tc.damage(t, seg)
			damaged, err := os.ReadFile(seg)
			require.NoError(t, err)

			d2 := open(t, dir, Options{Sync: SyncNever})
			l2, _ := collect(t, d2, "t", 0)
			kept, err := os.ReadFile(seg)
			require.NoError(t, err)
			saved, _ := filepath.Glob(seg + "*.damaged")
			var savedBytes []byte
			for _, s := range saved {
				b, err := os.ReadFile(s)
				require.NoError(t, err)
				savedBytes = append(savedBytes, b...)
			}
			assert.Equal(t, damaged, append(kept, savedBytes...), "the bytes cut from the last segment are erased, not set aside (original %d bytes)", len(orig))
			// Offsets go on from the file's name at least: never below it.
			base := int64(0)
			if tc.name == "name does not match the content" {
				base = 5
			}
			assert.GreaterOrEqual(t, l2.Next(), base)
		})
	}
}
