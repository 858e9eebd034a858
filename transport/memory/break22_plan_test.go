package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak22SubscribeCommittedPlansTheRealJoin: in groups of random
// shapes (members of different topics, an instance replaced, members
// expired by their max poll interval, a group that does not exist yet), a
// refused SubscribeCommitted names exactly the partitions the same
// Subscribe then gets, and changes nothing the join would not: the other
// members keep their assignments, nobody is fenced, no start is fixed.
func TestBreak22SubscribeCommittedPlansTheRealJoin(t *testing.T) {
	parts := map[string]int{"a": 3, "b": 5, "c": 1, "d": 4}
	names := []string{"a", "b", "c", "d"}
	rng := rand.New(rand.NewPCG(22, 1))
	ctx := context.Background()
	for trial := range 150 {
		opts := []Option{WithAutoCreate(false)}
		for _, n := range names {
			opts = append(opts, WithTopic(n, parts[n]))
		}
		f := newFixture(t, opts...)
		pick := func() []string {
			var ts []string
			for _, n := range names {
				if rng.IntN(2) == 0 {
					ts = append(ts, n)
				}
			}
			if len(ts) == 0 {
				ts = []string{names[rng.IntN(len(names))]}
			}
			return ts
		}
		var members []*Consumer
		for range rng.IntN(5) {
			s := sub("g", fmt.Sprintf("m%d", rng.IntN(6)), transport.StartLatest, pick()...)
			s.MaxPollInterval = time.Hour
			if rng.IntN(3) == 0 {
				s.MaxPollInterval = time.Second // expires below
			}
			members = append(members, f.join(t, s))
		}
		f.clock.advance(2 * time.Second)
		if rng.IntN(2) == 0 {
			f.Groups() // the expiry done before, else by the call
		}
		live := map[*Consumer]bool{}
		for _, m := range members {
			live[m] = m.check() == nil
		}
		gpBefore := f.groupParts("g")
		newSub := sub("g", fmt.Sprintf("m%d", rng.IntN(7)), transport.StartEarliest, pick()...)
		if rng.IntN(2) == 0 {
			newSub.Instance = "" // a generated one
		}
		c, missing, err := f.SubscribeCommitted(ctx, newSub)
		require.NoError(t, err)
		if c != nil {
			// Nothing committed: it joins only when it owns nothing.
			require.Empty(t, c.(*Consumer).Assignment(), "trial %d", trial)
			require.NoError(t, c.Close())
			continue
		}
		for _, m := range members {
			if live[m] {
				require.NoError(t, m.check(), "trial %d: refusal fenced or closed a member", trial)
			}
		}
		// Parts the expiry's rebalance gave out may have got a start; the
		// refusal itself fixes none: every partition still without one
		// before the expiry and not owned now has none.
		owned := map[*partition]bool{}
		for _, m := range members {
			if m.check() == nil {
				m.mu.Lock()
				for _, o := range m.owned {
					owned[o.p] = true
				}
				m.mu.Unlock()
			}
		}
		for p, gp := range f.groupParts("g") {
			if was, ok := gpBefore[p]; (!ok || was.resolved < 0) && !owned[p] {
				require.Equal(t, int64(-1), gp.resolved, "trial %d: refusal fixed a start of %s/%d", trial, p.topic.name, p.index)
			}
		}
		if newSub.Instance == "" {
			continue // a generated instance: the plan cannot be replayed
		}
		j := f.join(t, newSub)
		got := append([]transport.TopicPartition(nil), j.assignedList()...)
		require.Equal(t, missing, got, "trial %d: planned %v, joined with %v", trial, missing, got)
	}
}

// groupParts returns group name's partition states (none when the group
// does not exist).
func (f *fixture) groupParts(name string) map[*partition]groupPart {
	f.Broker.mu.Lock()
	g := f.Broker.groups[name]
	f.Broker.mu.Unlock()
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[*partition]groupPart{}
	for p, gp := range g.parts {
		out[p] = *gp
	}
	return out
}

// assignedList is c's assignment as sorted TopicPartitions.
func (c *Consumer) assignedList() []transport.TopicPartition {
	var out []transport.TopicPartition
	for topic, ps := range c.Assignment() {
		for _, p := range ps {
			out = append(out, transport.TopicPartition{Topic: topic, Partition: p})
		}
	}
	slices.SortFunc(out, func(x, y transport.TopicPartition) int {
		if x.Topic != y.Topic {
			if x.Topic < y.Topic {
				return -1
			}
			return 1
		}
		return int(x.Partition - y.Partition)
	})
	return out
}

// TestBreak22RefusalDeletingItsGroupRacesJoins: refused SubscribeCommitted
// calls that make a group and delete it again race Subscribes of the same
// group: every member that joined is in the broker's group, owns its share
// and reads what is produced.
func TestBreak22RefusalDeletingItsGroupRacesJoins(t *testing.T) {
	f := newFixture(t, WithAutoCreate(false), WithTopic("t", 4))
	ctx := context.Background()
	for round := range 40 {
		group := fmt.Sprintf("g%d", round)
		var joined []transport.Consumer
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				s := sub(group, fmt.Sprintf("i%d", i), transport.StartEarliest, "t")
				if i%2 == 0 {
					c, missing, err := f.SubscribeCommitted(ctx, s)
					if err != nil || c != nil {
						t.Errorf("SubscribeCommitted: %v, %v (nothing is committed)", c, err)
					}
					if len(missing) == 0 {
						t.Errorf("SubscribeCommitted refused nothing")
					}
					return
				}
				c, err := f.Subscribe(ctx, s)
				if err != nil {
					t.Errorf("Subscribe: %v", err)
					return
				}
				mu.Lock()
				joined = append(joined, c)
				mu.Unlock()
			})
		}
		wg.Wait()
		var found *GroupInfo
		for _, gi := range f.Groups() {
			if gi.Name == group {
				found = &gi
			}
		}
		require.NotNil(t, found, "round %d: the group of the joined members is gone", round)
		require.Len(t, found.Members, len(joined))
		total := 0
		for _, c := range joined {
			total += len(c.(*Consumer).Assignment()["t"])
		}
		require.Equal(t, 4, total, "round %d: partitions owned", round)
		for _, c := range joined {
			require.NoError(t, c.Close())
		}
	}
}
