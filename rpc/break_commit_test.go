package rpc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// slowCommitTransport holds the first Commit naming topic until release is
// closed, and closes returned once that Commit returned.
type slowCommitTransport struct {
	transport.Transport
	topic    string
	once     sync.Once
	started  chan struct{}
	release  chan struct{}
	returned chan struct{}
}

func (s *slowCommitTransport) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	c, err := s.Transport.Subscribe(ctx, sub)
	if err != nil {
		return nil, err
	}
	return &slowCommitConsumer{Consumer: c, s: s}, nil
}

type slowCommitConsumer struct {
	transport.Consumer
	s *slowCommitTransport
}

func (c *slowCommitConsumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	first := false
	for _, m := range msgs {
		if m.Topic == c.s.topic {
			c.s.once.Do(func() { first = true })
		}
	}
	if !first {
		return c.Consumer.Commit(ctx, msgs...)
	}
	close(c.s.started)
	select {
	case <-c.s.release:
	case <-ctx.Done():
	}
	err := c.Consumer.Commit(ctx, msgs...)
	close(c.s.returned)
	return err
}

// A watermark taken before its partition was revoked is committed after the
// partition came back to the member (another member took it, committed
// further, and left): the commit carries no generation, the member owns the
// partition again, and the group's committed offset goes backwards. The
// records between are run again by the next reader of the partition.
//
// The commit is held in flight here (a slow network round trip); the
// tracker's epoch check happens only before the call (uncommitted) and
// after it (committed), never at the transport.
func TestBreakStaleCommitAfterPartitionCameBack(t *testing.T) {
	b := newBroker(t, memory.WithTopic("backx", 1))
	t.Cleanup(func() { b.Close() })
	st := &slowCommitTransport{Transport: b, topic: "backx",
		started: make(chan struct{}), release: make(chan struct{}), returned: make(chan struct{})}
	newServer := func(tr transport.Transport, inst string) *rpc.Server {
		s, err := rpc.NewServer(tr, rpc.WithName("srv"), rpc.WithGroup("gb"), rpc.WithInstance(inst), silent)
		require.NoError(t, err)
		rpc.Handle(s, "backx", func(ctx context.Context, i int) (int, error) { return i, nil })
		return s
	}
	startServe(t, newServer(st, "b"))
	c := newClient(t, b)
	require.NoError(t, c.Notify(context.Background(), "backx", 0))
	select {
	case <-st.started:
	case <-time.After(5 * time.Second):
		t.Fatal("s1 did not commit")
	}
	// s2 ("a") takes the partition, handles more and commits past it.
	stop2 := startServe(t, newServer(b, "a"))
	require.NoError(t, c.Notify(context.Background(), "backx", 1))
	require.NoError(t, c.Notify(context.Background(), "backx", 2))
	committedAt(t, b, "gb", "backx", 0, 3)
	require.NoError(t, stop2()) // the partition goes back to s1
	close(st.release)
	select {
	case <-st.returned:
	case <-time.After(5 * time.Second):
		t.Fatal("s1's held commit did not return")
	}
	off, err := b.Committed("gb", "backx", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(3), off, "the group's committed offset went backwards")
}
