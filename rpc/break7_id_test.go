package rpc

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBreak7IDsNeverChange keeps ids made by many goroutines (with a copy
// of each made at once), makes a million more from as many goroutines, and
// then checks, under -race, that no kept id's bytes changed, that all are
// unique, and that they still work as map keys.
func TestBreak7IDsNeverChange(t *testing.T) {
	const gs, perG = 16, 2000
	type kept struct{ id, copy string }
	all := make([][]kept, gs)
	var wg sync.WaitGroup
	for g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				var id string
				if i%2 == 0 {
					id = newID()
				} else {
					id = newIDAt(time.Now())
				}
				all[g] = append(all[g], kept{id, strings.Clone(id)})
			}
		}()
	}
	wg.Wait()
	byID := make(map[string]int, gs*perG)
	for g := range all {
		for i, k := range all[g] {
			_, dup := byID[k.id]
			require.False(t, dup, "id %s made twice", k.id)
			byID[k.id] = g*perG + i
		}
	}
	// A million more, from as many goroutines, while the map holds the
	// kept ones.
	more := 1_000_000
	if testing.Short() {
		more = 100_000
	}
	for range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range more / gs {
				if id := newID(); len(id) != idLen {
					t.Errorf("id %q", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	for g := range all {
		for i, k := range all[g] {
			require.Equal(t, k.copy, k.id, "id changed after it was handed out")
			require.Equal(t, g*perG+i, byID[k.copy], "map lookup by an equal string")
		}
	}
}
