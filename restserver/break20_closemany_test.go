package restserver_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// slowLeave is a backend whose members take a while to close, as a Kafka
// member's does (a LeaveGroup round trip; up to the leave timeout, seconds,
// when the cluster is slow or unreachable): each Close waits until want
// closes are under way at once, or for at most patience.
type slowLeave struct {
	restserver.Backend
	want      int32
	patience  time.Duration
	closing   atomic.Int32
	allClosed chan struct{}
}

type slowLeaveMember struct {
	restserver.Member
	b *slowLeave
}

func (s *slowLeave) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	c, err := s.Backend.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return slowLeaveMember{c.(restserver.Member), s}, nil
}

func (m slowLeaveMember) Close() error {
	if m.b.closing.Add(1) == m.b.want {
		close(m.b.allClosed)
	}
	t := time.NewTimer(m.b.patience)
	defer t.Stop()
	select {
	case <-m.b.allClosed:
	case <-t.C:
	}
	return m.Member.Close()
}

// TestBreak20CloseOfManyInstancesIsNotSequential: Server.Close (and so
// kafka-rest's shutdown, whose grace of 10 s covers only the requests in
// flight) closed its consumer instances one after the other, each a
// commit (up to 5 s) and a leave of the group. With a thousand instances
// (the default cap) in front of Kafka, that is minutes, and hours when the
// cluster is unreachable: past any supervisor's stop timeout, after which
// the process is killed with the commits and leaves of most instances
// undone. The instances are independent: they close together now, so the
// time to close is about one instance's.
func TestBreak20CloseOfManyInstancesIsNotSequential(t *testing.T) {
	t.Parallel()
	const n = 8
	const patience = 400 * time.Millisecond // sequential: n × patience = 3.2 s
	sl := &slowLeave{want: n, patience: patience, allClosed: make(chan struct{})}
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithTopic("t", 1)},
		wrap:   func(b restserver.Backend) restserver.Backend { sl.Backend = b; return sl },
	})
	for i := range n {
		e.ok("POST", fmt.Sprintf("/consume/g%d/w", i), `{"topic":"t","timeout":0}`)
	}

	start := time.Now()
	require.NoError(t, e.srv.Close())
	took := time.Since(start)
	t.Logf("closing %d instances took %v", n, took)
	require.Equal(t, int32(n), sl.closing.Load(), "every instance's member was closed")
	require.Less(t, took, n*patience/2,
		"Server.Close closes its instances one after the other: its time grows with their number")
}
