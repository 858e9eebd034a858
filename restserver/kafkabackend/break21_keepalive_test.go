package kafkabackend_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// The REST transport's instance keep-alive (transport/upstash's
// WithInstanceKeepAlive) over Kafka, where the REST server does not
// enforce the max poll interval: an owner busy for longer than the
// instance expiry keeps its partition (its keep-alive, GET /committed,
// reads the member's assignment and the group's committed offsets on
// Kafka), and one stuck past its max poll interval loses it an expiry
// later, to the other member, which gets the record it never committed.
func TestBreak21KeepAliveOverKafka(t *testing.T) {
	const (
		expiry  = 700 * time.Millisecond
		every   = 100 * time.Millisecond
		maxPoll = 2500 * time.Millisecond
	)
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"jobs": 1}})
	rs, err := restserver.New(c.Backend, restserver.WithInstanceExpiry(expiry), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	url := serve(t, rs)
	newTr := func(opts ...upstash.Option) *upstash.Transport {
		tr, err := upstash.New(append([]upstash.Option{upstash.WithURL(url), upstash.WithPollWindow(200 * time.Millisecond),
			upstash.WithBackoff(upstash.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 5 * time.Second})}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	busyTr := newTr(upstash.WithInstanceKeepAlive(every))
	_, err = busyTr.Produce(ctx, transport.Message{Topic: "jobs", Value: []byte("report")})
	require.NoError(t, err)
	busy, err := busyTr.Subscribe(ctx, transport.Subscription{Group: "g", Instance: "a", Topics: []string{"jobs"},
		Start: transport.StartEarliest, MaxPollInterval: maxPoll})
	require.NoError(t, err)
	var got []transport.Message
	for len(got) == 0 {
		msgs, err := busy.Poll(ctx)
		require.NoError(t, err)
		got = append(got, msgs...)
	}
	polled := time.Now()

	// The other member ("b": the range assignor gives "a" the partition).
	other, err := newTr(upstash.WithInstanceKeepAlive(0)).Subscribe(ctx, transport.Subscription{Group: "g", Instance: "b",
		Topics: []string{"jobs"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	var (
		mu       sync.Mutex
		taken    []transport.Message
		takenAt  time.Time
		pollDone = make(chan struct{})
	)
	go func() {
		defer close(pollDone)
		for ctx.Err() == nil {
			msgs, err := other.Poll(ctx)
			if errors.Is(err, transport.ErrClosed) {
				return
			}
			mu.Lock()
			if len(msgs) > 0 && takenAt.IsZero() {
				takenAt = time.Now()
			}
			taken = append(taken, msgs...)
			mu.Unlock()
		}
	}()
	defer func() { cancel(); <-pollDone }()
	takenYet := func() bool { mu.Lock(); defer mu.Unlock(); return len(taken) > 0 }

	// Busy (no Poll) for more than twice the expiry, within the max
	// poll interval: the partition stays.
	require.Never(t, takenYet, 2*expiry, 10*time.Millisecond, "the busy member's record went to the other member")
	assert.Equal(t, 2, rs.Stats().Instances, "instances")
	// Stuck past the max poll interval: the keep-alives stop, the
	// instance expires, and the record goes to the other member.
	require.Eventually(t, takenYet, maxPoll+expiry+20*time.Second, 20*time.Millisecond, "the stuck member kept its partition")
	mu.Lock()
	assert.GreaterOrEqual(t, takenAt.Sub(polled), maxPoll, "the partition moved before the max poll interval")
	assert.Equal(t, got[0].Offset, taken[0].Offset)
	mu.Unlock()
}
