package rpc

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAbandonedIDsDoNotKeepTheirArenas: the ids of calls that gave up are
// remembered (defaultLateMemory of them) for their late replies; one such
// call among the 32 whose ids share an arena keeps 36 bytes, not the
// arena's 1,152 (4,096 of them kept 4.7 MB before).
func TestAbandonedIDsDoNotKeepTheirArenas(t *testing.T) {
	r := newSlotRig(t, false)
	c := r.c
	const n = defaultLateMemory
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for range n {
		var id string
		for range idsPerArena { // the other 31 calls of the arena were answered
			id = newID()
		}
		c.mu.Lock()
		c.rememberAbandonedLocked(id)
		c.mu.Unlock()
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew %d bytes for %d remembered ids", grown, n)
	require.Less(t, grown, int64(n*idsPerArena*idLen/4), "the remembered ids keep their arenas")
	c.mu.Lock()
	require.Equal(t, n, len(c.abandoned.set))
	c.mu.Unlock()
}
