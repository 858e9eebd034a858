package kafka_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// Close racing a blocked Poll, a Commit held at the broker, and the
// transport's own Close: every call returns (bounded), Poll and Commit
// report ErrClosed or the commit's outcome, and no goroutine is left
// (goleak in TestMain).
func TestBreak5CloseWhilePollAndCommit(t *testing.T) {
	c := newFake(t)
	brokers := c.ListenAddrs()
	tr := newTransport(t, brokers, kafka.PollWindow(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "b5close-" + uuid.NewString()[:8]
	_, err := tr.Produce(ctx, transport.Message{Topic: topic, Partition: 0, ManualPartition: true, Value: []byte("x")})
	require.NoError(t, err)
	cons, err := tr.Subscribe(ctx, transport.Subscription{Group: topic + "-g", Topics: []string{topic}, Start: transport.StartEarliest})
	require.NoError(t, err)
	var got []transport.Message
	for len(got) == 0 {
		got, err = cons.Poll(ctx)
		require.NoError(t, err)
	}

	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.OffsetCommit), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() {
			close(held)
			c.SleepControl(func() {
				select {
				case <-release:
				case <-time.After(3 * time.Second):
				}
			})
		})
		return nil, nil, false
	})
	var wg sync.WaitGroup
	wg.Add(2)
	var commitErr, pollErr error
	go func() { defer wg.Done(); commitErr = cons.Commit(ctx, got[0]) }()
	go func() { defer wg.Done(); _, pollErr = cons.Poll(ctx) }()
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("commit never reached the broker")
	}
	closed := make(chan struct{})
	go func() { _ = cons.Close(); _ = tr.Close(); close(closed) }()
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung with a Poll and a Commit in flight")
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Poll or Commit did not return after Close")
	}
	require.ErrorIs(t, pollErr, transport.ErrClosed)
	if commitErr != nil && !errors.Is(commitErr, transport.ErrClosed) && !errors.Is(commitErr, transport.ErrNotAssigned) {
		t.Logf("commit after close: %v", commitErr)
	}
	_, err = cons.Poll(ctx)
	require.ErrorIs(t, err, transport.ErrClosed)
	require.ErrorIs(t, cons.Commit(ctx, got[0]), transport.ErrClosed)
}
