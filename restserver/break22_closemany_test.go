package restserver_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak22CloseOf200InstancesCommitsAllAndEveryOneLeaves: Close of 200
// auto-committing instances (40 groups of 5, each instance owning one
// partition it has read two records of), one instance per group whose
// commit on close fails: every other position is committed, the failing
// instances leave their groups too (none is left a member), in well under
// the time one-at-a-time closes of slow commits would take.
func TestBreak22CloseOf200InstancesCommitsAllAndEveryOneLeaves(t *testing.T) {
	t.Parallel()
	const groups, perGroup = 40, 5
	fc := &failCommit{fail: "w0"}
	// On the embedded broker whatever KAFKARPC_REST_BACKEND says (200
	// members' joins on kfake take too long for the suite).
	s := resttest.Start(t, resttest.Config{
		Broker:  []memory.Option{memory.WithTopic("t", perGroup)},
		Server:  []restserver.Option{restserver.WithCredentials(testUser, testPass)},
		Backend: func(b restserver.Backend) restserver.Backend { fc.Backend = b; return fc },
	})
	e := &env{t: t, broker: s.Broker, srv: s.REST, url: s.URL, client: s.HTTP.Client(), backend: restserver.NewMemoryBackend(s.Broker)}
	hdr := []string{"Kafka-Auto-Commit-Interval", "3600000", "Kafka-Auto-Offset-Reset", "earliest"}
	// All instances of a group join before any reads (one partition each),
	// then two records go to each partition and each instance reads its
	// partition's.
	var wg sync.WaitGroup
	for g := range groups {
		wg.Go(func() {
			for i := range perGroup {
				e.ok("POST", fmt.Sprintf("/consume/g%d/w%d", g, i), `{"topic":"t","timeout":0}`, hdr...)
			}
		})
	}
	wg.Wait()
	for _, gi := range e.broker.Groups() {
		for _, m := range gi.Members {
			require.Len(t, m.Assignment["t"], 1, "group %s member %s", gi.Name, m.Instance)
		}
	}
	for p := range perGroup {
		e.ok("POST", "/produce", fmt.Sprintf(`[{"topic":"t","partition":%d,"value":"a"},{"topic":"t","partition":%d,"value":"b"}]`, p, p))
	}
	for g := range groups {
		wg.Go(func() {
			for i := range perGroup {
				got := 0
				for deadline := time.Now().Add(10 * time.Second); got < 2; {
					if time.Now().After(deadline) {
						t.Errorf("g%d/w%d read %d of 2", g, i, got)
						return
					}
					got += len(decode[[]consumed](t, e.ok("POST", fmt.Sprintf("/consume/g%d/w%d", g, i), `{"topic":"t","timeout":100}`, hdr...)))
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, e.broker.Groups(), groups)

	start := time.Now()
	require.NoError(t, e.srv.Close())
	took := time.Since(start)
	t.Logf("Close of %d instances took %v", groups*perGroup, took)
	assert.Less(t, took, 5*time.Second)
	assert.EqualValues(t, groups, fc.failed.Load(), "failed commits")
	for _, gi := range e.broker.Groups() {
		assert.Empty(t, gi.Members, "group %s still has members", gi.Name)
	}
	for g := range groups {
		group := fmt.Sprintf("g%d", g)
		for p := range int32(perGroup) {
			off, err := e.broker.Committed(group, "t", p)
			require.NoError(t, err)
			if p == 0 {
				// w0 owns partition 0 (range, by instance): its commit failed.
				assert.EqualValues(t, -1, off, "%s partition 0", group)
				continue
			}
			assert.EqualValues(t, 2, off, "%s partition %d", group, p)
		}
	}
}

// failCommit is a backend whose members named fail fail their commits.
type failCommit struct {
	restserver.Backend
	fail   string
	failed atomic.Int64
}

type failCommitMember struct {
	restserver.Member
	b    *failCommit
	name string
}

func (b *failCommit) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	c, err := b.Backend.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return failCommitMember{c.(restserver.Member), b, sub.Instance}, nil
}

func (m failCommitMember) CommitPositions(ctx context.Context) error {
	if m.name == m.b.fail {
		m.b.failed.Add(1)
		return errors.New("break22: this member's commits fail")
	}
	return m.Member.CommitPositions(ctx)
}
