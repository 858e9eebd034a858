package kafka_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// BUG (fixed): a commit could go backwards across a re-assignment.
//
// commitRequest refuses a commit below the offset where the member's current
// assignment began (consumer.assigned[tp]). But onAssigned stored 0 there for
// a newly assigned partition, and the real start is only learnt later, in
// AdjustFetchOffsetsFn, after the OffsetFetch round trip (franz-go calls
// OnPartitionsAssigned before it fetches the committed offsets). A late
// Commit of a record polled in the member's previous assignment, made in
// that window, was checked against 0, sent with the new generation and
// accepted by the broker: the group's offset went back from 20 to 6, and a
// restart would run records 6..19 again.
//
// The window is widened here by sleeping the member's OffsetFetch in kfake
// until the stale commit has been made (bounded: at most 2 s).
func TestBreak5StaleCommitInReassignWindow(t *testing.T) {
	c := newFake(t)
	brokers := c.ListenAddrs()
	tr := newTransport(t, brokers, kafka.PollWindow(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	topic := "b5win-" + uuid.NewString()[:8]
	group := topic + "-g"
	msgs := make([]transport.Message, 20)
	for i := range msgs {
		msgs[i] = transport.Message{Topic: topic, Partition: 0, ManualPartition: true, Value: []byte{byte(i)}}
	}
	_, err := tr.Produce(ctx, msgs...)
	require.NoError(t, err)

	revoked := make(chan struct{}, 16)
	cons, err := tr.Subscribe(ctx, transport.Subscription{
		Group: group, Topics: []string{topic}, Start: transport.StartEarliest,
		MaxPollInterval: 400 * time.Millisecond,
		OnRevoked:       func([]transport.TopicPartition) { revoked <- struct{}{} },
	})
	require.NoError(t, err)
	defer cons.Close()

	var got []transport.Message
	for len(got) < 20 {
		ms, err := cons.Poll(ctx)
		require.NoError(t, err)
		got = append(got, ms...)
	}
	require.NoError(t, cons.Commit(ctx, got[19]))
	stale := got[5]

	// Sleep the next OffsetFetch of the group until the stale commit is made.
	var armed atomic.Bool
	fetching := make(chan struct{})
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.OffsetFetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !armed.CompareAndSwap(true, false) {
			return nil, nil, false
		}
		close(fetching)
		c.SleepControl(func() {
			select {
			case <-release:
			case <-time.After(2 * time.Second):
			}
		})
		return nil, nil, false
	})

	// Stop polling: the member is dropped for its max poll interval.
	select {
	case <-revoked:
	case <-ctx.Done():
		t.Fatal("not dropped after its max poll interval")
	}
	armed.Store(true)
	pollDone := make(chan struct{})
	go func() { // rejoins
		defer close(pollDone)
		for ctx.Err() == nil {
			if _, err := cons.Poll(ctx); err != nil {
				return
			}
			select {
			case <-release:
				return
			default:
			}
		}
	}()
	select {
	case <-fetching:
	case <-ctx.Done():
		t.Fatal("rejoin never fetched offsets")
	}
	commitErr := make(chan error, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		commitErr <- cons.Commit(cctx, stale)
	}()
	// The commit request is on the same connection as the sleeping
	// OffsetFetch, so kfake handles it only after it; give Commit time to
	// build and send it before the fetch answers (this widens the race
	// window; correctness does not depend on it).
	time.Sleep(300 * time.Millisecond)
	close(release)
	cerr := <-commitErr
	<-pollDone

	adm := kadm.NewClient(mustClient(t, brokers))
	offs, err := adm.FetchOffsets(ctx, group)
	require.NoError(t, err)
	o, ok := offs.Lookup(topic, 0)
	require.True(t, ok)
	if cerr == nil || !errors.Is(cerr, transport.ErrNotAssigned) {
		t.Errorf("stale commit of offset %d after re-assignment: err=%v, want ErrNotAssigned", stale.Offset, cerr)
	}
	require.Equal(t, int64(20), o.At, "group offset went backwards")
}

func mustClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}
