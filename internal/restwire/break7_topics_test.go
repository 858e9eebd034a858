package restwire

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The process-wide topic-name cache under hostile names: a stream of
// distinct names (every body a new topic) keeps the heap flat, and
// goroutines decoding colliding names at once always get their own name.
func TestBreak7TopicCacheBounded(t *testing.T) {
	decodeMany := func(from, n int) {
		for i := from; i < from+n; i++ {
			name := fmt.Sprintf("hostile-%060d", i) // within maxSharedTopicLen: cached
			req, ok := DecodeConsumeRequest([]byte(`{"topics":["` + name + `"]}`))
			if !ok || req.Topics[0] != name {
				t.Fatalf("decoded %q as %v (ok %v)", name, req.Topics, ok)
			}
		}
	}
	decodeMany(0, 10_000) // warm: every slot taken
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	decodeMany(10_000, 200_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap after 200,000 distinct topic names: %+d KiB", grew>>10)
	assert.Less(t, grew, int64(1<<20), "the topic cache grows with distinct names")
	cached := 0
	for i := range sharedTopicSlots {
		if p := sharedTopicSlots[i].Load(); p != nil {
			cached++
			assert.LessOrEqual(t, len(*p), maxSharedTopicLen)
		}
	}
	assert.LessOrEqual(t, cached, sharedTopics)
}

func TestBreak7TopicCacheConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20_000 {
				// Few names, many collisions between goroutines, some the
				// same length (a torn compare would show as a wrong name).
				name := fmt.Sprintf("t-%d-%s", (i+g)%300, strings.Repeat("x", i%3))
				req, ok := DecodeFetchRequest([]byte(`{"topic":"` + name + `","partition":0,"offset":1}`))
				if !ok || req.Topic != name {
					t.Errorf("decoded %q as %q", name, req.Topic)
					return
				}
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
}
