package restserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak21ParallelCloseOfOneGroupCommitsEveryPosition: Close commits
// each auto-committing instance's positions, then leaves its group. With
// several instances of one group, a leave rebalances the group before the
// others have committed: on the embedded broker a partition moved from a
// member still to commit starts, for the member taking it, from the
// committed offset, and the member that read it no longer owns it when it
// commits. The group then resumed from before records its instances had
// read (every run with 3771cc8's parallel closes; 3 runs in 5 one after
// the other, as before it). Every instance now commits before any leaves.
func TestBreak21ParallelCloseOfOneGroupCommitsEveryPosition(t *testing.T) {
	const parts = 4
	// w1's commit on close waits (up to a second) for w3 to have left, and
	// the others' leaves for w1's commit: an order a parallel close may take
	// on its own (13 runs in 20 without these waits).
	lc := &lateCommit{late: "w1", after: "w3", patience: time.Second, left: make(chan struct{}), committed: make(chan struct{})}
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", parts)},
		wrap:   func(b restserver.Backend) restserver.Backend { lc.Backend = b; return lc },
	})
	hdr := []string{"Kafka-Auto-Commit-Interval", "3600000", "Kafka-Auto-Offset-Reset", "earliest"}
	// Every instance joins before any record: the assignment settles.
	names := make([]string, parts)
	for i := range names {
		names[i] = fmt.Sprintf("/consume/g/w%d", i)
	}
	joined := func() bool {
		r := e.ok("GET", "/consumers", "")
		gs := decode[[]groupAssignments](t, r)
		if len(gs) != 1 || len(gs[0].Instances) != parts {
			return false
		}
		for _, in := range gs[0].Instances {
			if len(in.Topics) != 1 || len(in.Topics[0].Partitions) != 1 {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool {
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Go(func() { e.ok("POST", n, `{"topic":"t","timeout":200}`, hdr...) })
		}
		wg.Wait()
		return joined()
	}, 30*time.Second, 10*time.Millisecond, "the group's assignment did not settle")

	const perPart = 5
	for p := range parts {
		for i := range perPart {
			e.ok("POST", "/produce", fmt.Sprintf(`{"topic":"t","partition":%d,"value":"v%d"}`, p, i))
		}
	}
	got := 0
	deadline := time.Now().Add(20 * time.Second)
	for got < parts*perPart {
		require.True(t, time.Now().Before(deadline), "read %d of %d records", got, parts*perPart)
		for _, n := range names {
			got += len(decode[[]consumed](t, e.ok("POST", n, `{"topic":"t","timeout":0}`, hdr...)))
		}
	}

	start := time.Now()
	require.NoError(t, e.srv.Close())
	t.Logf("Close took %v", time.Since(start))
	for p := range int32(parts) {
		off, err := e.backend.Committed(context.Background(), "g", transport.TopicPartition{Topic: "t", Partition: p})
		require.NoError(t, err)
		require.Equal(t, int64(perPart), off, "partition %d: the position its instance reached was not committed on Close", p)
	}
}

// lateCommit is a backend whose member named late commits its positions
// only once the member named after has left its group, and whose other
// members leave only once late has committed (each wait up to patience).
type lateCommit struct {
	restserver.Backend
	late, after          string
	patience             time.Duration
	leftOnce, commitOnce sync.Once
	left, committed      chan struct{}
}

// waitFor waits for ch to be closed, up to patience.
func (b *lateCommit) waitFor(ch chan struct{}) {
	t := time.NewTimer(b.patience)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

type lateCommitMember struct {
	restserver.Member
	b    *lateCommit
	name string
}

func (b *lateCommit) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	c, err := b.Backend.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return lateCommitMember{c.(restserver.Member), b, sub.Instance}, nil
}

func (m lateCommitMember) CommitPositions(ctx context.Context) error {
	if m.name != m.b.late {
		return m.Member.CommitPositions(ctx)
	}
	m.b.waitFor(m.b.left)
	defer m.b.commitOnce.Do(func() { close(m.b.committed) })
	return m.Member.CommitPositions(ctx)
}

func (m lateCommitMember) Close() error {
	switch m.name {
	case m.b.after:
		defer m.b.leftOnce.Do(func() { close(m.b.left) })
	case m.b.late:
	default:
		m.b.waitFor(m.b.committed)
	}
	return m.Member.Close()
}
