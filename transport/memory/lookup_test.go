package memory

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// lookup's cache of recent topics answers with the topic of that name or
// nil, never another topic sharing its slot: with four times as many
// topics as slots, looked up in turns from several goroutines (slots
// change hands all the time), every name finds its own topic, and unknown
// names none.
func TestLookupCacheNeverAnswersAnotherTopic(t *testing.T) {
	b, err := New(WithMaxTopics(8*topicCacheSlots, 8*topicCacheSlots))
	require.NoError(t, err)
	defer b.Close()
	names := make([]string, 4*topicCacheSlots)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
		require.NoError(t, b.CreateTopic(names[i], 1))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 3 {
				for i := range names {
					name := names[(i*7+g+round)%len(names)]
					if got := b.lookup(name); got == nil || got.name != name {
						t.Errorf("lookup(%q) = %v", name, got)
						return
					}
					if got := b.lookup(name + "-none"); got != nil {
						t.Errorf("lookup(%q) = topic %q, want none", name+"-none", got.name)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
