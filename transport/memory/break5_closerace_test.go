package memory

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak5CommitRacesClose: commits running while the broker closes.
// Bug: Close closed meta.log's file (setting it to nil) while a commit
// that had passed its checks wrote to it without a common lock: a data
// race, and a SIGSEGV that killed the process (a nil *os.File's Name() in
// the error path of syncFile.write). A commit racing Close must either be
// written or fail with an error wrapping transport.ErrClosed. Run with
// -race.
func TestBreak5CommitRacesClose(t *testing.T) {
	ctx := context.Background()
	for range 20 {
		dir := t.TempDir()
		b := openDurable(t, dir, nil, WithFsync(FsyncNever()))
		produceN(t, b, "t", 0, 0, 1)
		var cs []*Consumer
		for i := range 4 {
			c, err := b.Subscribe(ctx, transport.Subscription{Group: "g" + string(rune('a'+i)), Topics: []string{"t"}, Start: transport.StartEarliest})
			require.NoError(t, err)
			cs = append(cs, c.(*Consumer))
		}
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for off := int64(1); ; off++ {
					if err := c.CommitOffsets(ctx, transport.Offset{Topic: "t", Offset: off}); err != nil {
						assert.ErrorIs(t, err, transport.ErrClosed)
						return
					}
				}
			}()
		}
		b.Close()
		wg.Wait()
	}
}
