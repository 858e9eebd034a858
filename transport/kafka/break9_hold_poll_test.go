package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// BUG (fixed): a static member's Poll read the hold (no records for one
// heartbeat interval after the first assignment) before it waited for
// records. A Poll begun before the first assignment (Subscribe returns
// before it when the join outlasts SetupTimeout) saw no hold yet and
// returned the records fetched right after the assignment: the hold did
// not apply, and a replaced live process and this one dispatched the same
// records.
func TestBreak9HoldAppliesToAPollBegunBeforeTheAssignment(t *testing.T) {
	fake := newFake(t) // kfake always: the slow join comes from its control hooks
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "b9hold-" + uuid.NewString()[:8]
	const hold, joinDelay = 2 * time.Second, 1500 * time.Millisecond
	tr := newTransport(t, fake.ListenAddrs(), kafka.HeartbeatInterval(hold), kafka.SetupTimeout(time.Second), kafka.PollWindow(5*time.Second))
	_, err := tr.Produce(ctx, transport.Message{Topic: topic, Partition: 0, ManualPartition: true, Value: []byte("x")})
	require.NoError(t, err)
	// The join outlasts SetupTimeout: Subscribe returns before the
	// member's first assignment, and the first Poll begins before it.
	fake.ControlKey(int16(kmsg.JoinGroup), func(kmsg.Request) (kmsg.Response, error, bool) {
		fake.SleepControl(func() { time.Sleep(joinDelay) })
		return nil, nil, false
	})

	start := time.Now()
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: topic + "-g", Instance: "inst", Topics: []string{topic},
		Start: transport.StartEarliest, SessionTimeout: 30 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	var got []transport.Message
	for len(got) == 0 {
		got, err = c.Poll(ctx)
		require.NoError(t, err)
	}
	// The first assignment comes after the delayed join.
	assert.GreaterOrEqual(t, time.Since(start), joinDelay+hold, "records returned within the hold")
}

// Close during the hold ends a blocked Poll at once, with ErrClosed.
func TestBreak9CloseDuringTheHold(t *testing.T) {
	brokers := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "b9hold-" + uuid.NewString()[:8]
	tr := newTransport(t, brokers, kafka.HeartbeatInterval(5*time.Second), kafka.PollWindow(10*time.Second))
	_, err := tr.Produce(ctx, transport.Message{Topic: topic, Value: []byte("x")})
	require.NoError(t, err)
	c, err := tr.Subscribe(ctx, transport.Subscription{Group: topic + "-g", Instance: "inst", Topics: []string{topic},
		Start: transport.StartEarliest, SessionTimeout: 30 * time.Second})
	require.NoError(t, err)
	polled := make(chan error, 1)
	go func() {
		msgs, err := c.Poll(ctx)
		if len(msgs) > 0 {
			err = errors.New("records during the hold")
		}
		polled <- err
	}()
	time.Sleep(200 * time.Millisecond) // lets the Poll block in the hold; not a readiness wait for the result
	closed := time.Now()
	require.NoError(t, c.Close())
	select {
	case err := <-polled:
		assert.ErrorIs(t, err, transport.ErrClosed)
		assert.Less(t, time.Since(closed), time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("Poll still blocked 5 s after Close")
	}
}
