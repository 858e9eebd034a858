package disklog

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendWaitingForRoomEndsAtClose: an Append that waits for room
// under MaxOpen (every open log appending) when the Dir closes ends with
// ErrClosed; it waited for good (S17C's probe). Close must not run under
// an Append by contract; the broker keeps to it, a misuse still ends.
func TestAppendWaitingForRoomEndsAtClose(t *testing.T) {
	d := open(t, t.TempDir(), Options{Sync: SyncNever, MaxOpen: 1})
	a, _ := collect(t, d, "t", 0)
	b, _ := collect(t, d, "t", 1)
	at := time.Unix(1_700_000_000, 0)
	_, err := a.Append(msgs(0, 1), at)
	require.NoError(t, err)
	a.mu.Lock() // a appends: its file cannot be closed for room
	done := make(chan error, 1)
	go func() {
		_, err := b.Append(msgs(1, 1), at)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("b appended with no room: %v", err)
	case <-time.After(50 * time.Millisecond): // b waits (bounded look: it must not end)
	}
	require.NoError(t, d.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the append waiting for room did not end at Close")
	}
	a.mu.Unlock()
}
