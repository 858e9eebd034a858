package upstash

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// Break 8: a tail's PollCarrying (tail_carry.go) against a real REST
// server on loopback, in the ways the contract (transport.CarryingPoller)
// can break: acked exactly once with the truth, nothing written twice or
// lost, positions never skipping or repeating records across carried and
// plain polls.

// requestCounter counts the requests of each path that reach h.
type requestCounter struct {
	h     http.Handler
	mu    sync.Mutex
	count map[string]int
}

func (c *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.count[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *requestCounter) n(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[key]
}

// failingOffsets is a backend whose Offsets fails with err for topic
// while on: a fetch of it fails once the records it carries are written.
type failingOffsets struct {
	restserver.Backend
	topic string
	on    atomic.Bool
	err   error
}

func (b *failingOffsets) Offsets(ctx context.Context, tp transport.TopicPartition) (int64, int64, error) {
	if b.on.Load() && tp.Topic == b.topic {
		return 0, 0, b.err
	}
	return b.Backend.Offsets(ctx, tp)
}

// startCounted starts a REST server with topics "in" and "out" (one
// partition each), its backend wrapped by wrap when not nil, behind a
// request counter.
func startCounted(t *testing.T, wrap func(restserver.Backend) restserver.Backend) (*resttest.Server, *requestCounter, string) {
	t.Helper()
	s := resttest.Start(t, resttest.Config{
		Broker:  []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		Backend: wrap,
	})
	rc := &requestCounter{h: s.REST, count: map[string]int{}}
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)
	return s, rc, hs.URL
}

// topicValues reads every record of topic's partition 0 from the broker.
func topicValues(t *testing.T, b *memory.Broker, topic string) []string {
	t.Helper()
	out := []string{}
	for off := int64(0); ; {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		msgs, err := b.Fetch(ctx, topic, 0, off, 1000)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		require.NoError(t, err)
		for _, m := range msgs {
			out = append(out, string(m.Value))
			off = m.Offset + 1
		}
	}
}

// learnCarry polls tail until tr has heard from the server whether it
// takes records with a fetch.
func learnCarry(t *testing.T, tr *Transport, tail transport.Consumer) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, _ = tail.Poll(ctx)
		return tr.fetchCarry.Load() == fetchCarryYes
	}, 10*time.Second, time.Millisecond)
}

// A carried fetch that fails after its records were written (404 or 503,
// with Kafka-Produced): acked once with the records written, PollCarrying
// returns the fetch's error, and nothing is produced again (no POST
// /produce, no retry of the fetch); the next Poll reads on from where the
// tail was.
func TestBreak8TailCarryFetchFailsAfterProduce(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
	}{
		{"unknown topic", fmt.Errorf("gone: %w", transport.ErrUnknownTopic), http.StatusNotFound},
		{"unavailable", restserver.ErrUnavailable, http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			var fo *failingOffsets
			s, rc, url := startCounted(t, func(b restserver.Backend) restserver.Backend {
				fo = &failingOffsets{Backend: b, topic: "in", err: c.err}
				return fo
			})
			tr := newTestTransport(t, url, WithPollWindow(200*time.Millisecond))
			tail, err := tr.Tail(t.Context(), "in")
			require.NoError(t, err)
			defer tail.Close()
			learnCarry(t, tr, tail)
			_, err = tr.Produce(t.Context(), transport.Message{Topic: "in", Value: []byte("reply")})
			require.NoError(t, err)

			fo.on.Store(true)
			fetches, produces := rc.n("POST /fetch"), rc.n("POST /produce")
			a := newAck()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			got, err := tail.(transport.CarryingPoller).PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("request")}}, a.fn)
			cancel()
			var he *Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, c.status, he.Status)
			assert.Empty(t, got)
			require.Equal(t, int32(1), a.calls.Load())
			require.NoError(t, a.err, "the records were written: the answer said so")
			require.Len(t, a.written, 1)
			assert.Equal(t, fetches+1, rc.n("POST /fetch"), "one fetch, not retried")
			assert.Equal(t, produces, rc.n("POST /produce"), "not produced again")
			assert.Equal(t, []string{"request"}, topicValues(t, s.Broker, "out"))

			fo.on.Store(false)
			got = pollN(t, tail, 1)
			require.Len(t, got, 1)
			assert.Equal(t, "reply", string(got[0].Value), "nothing skipped")
		})
	}
}

// Tails on one Transport carry at once through a server that ignores the
// field (it answers 2xx without Kafka-Produced): each tail's records are
// produced alone, exactly once, none lost.
func TestBreak8TailCarryIgnoredConcurrently(t *testing.T) {
	s := resttest.Start(t, resttest.Config{
		Broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
	})
	hs := httptest.NewServer(ignoresFetchCarry(s.REST))
	t.Cleanup(hs.Close)
	tr := newTestTransport(t, hs.URL, WithPollWindow(100*time.Millisecond))
	const n = 8
	tails := make([]transport.Consumer, n)
	for i := range tails {
		tail, err := tr.Tail(t.Context(), "in")
		require.NoError(t, err)
		defer tail.Close()
		tails[i] = tail
	}
	learnCarry(t, tr, tails[0])
	var wg sync.WaitGroup
	for i, tail := range tails {
		wg.Go(func() {
			a := newAck()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := tail.(transport.CarryingPoller).PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte(strconv.Itoa(i))}}, a.fn)
			assert.NoError(t, err)
			assert.Equal(t, int32(1), a.calls.Load())
			assert.NoError(t, a.err)
			assert.Len(t, a.written, 1)
		})
	}
	wg.Wait()
	got := topicValues(t, s.Broker, "out")
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	assert.ElementsMatch(t, want, got, "each record once")
	assert.Equal(t, fetchCarryNo, tr.fetchCarry.Load())
}

// Carried and plain polls of one tail, from two goroutines at once, while
// records arrive: every record of "in" is returned exactly once, each
// goroutine's in offset order; every carried record is written once and
// acked once.
func TestBreak8TailCarryMixedPollsPositions(t *testing.T) {
	s, rc, url := startCounted(t, nil)
	tr := newTestTransport(t, url, WithPollWindow(50*time.Millisecond))
	producer := newTestTransport(t, s.URL) // not counted
	tail, err := tr.Tail(t.Context(), "in")
	require.NoError(t, err)
	defer tail.Close()
	learnCarry(t, tr, tail)
	cp := tail.(transport.CarryingPoller)

	const total = 300
	var (
		mu      sync.Mutex
		seen    = map[int64]int{}
		carried atomic.Int64
		stop    atomic.Bool
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	poller := func(id int) func() {
		return func() {
			last := int64(-1)
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				var got []transport.Message
				var err error
				if (i+id)%2 == 0 {
					a := newAck()
					v := fmt.Sprintf("%d-%d", id, i)
					got, err = cp.PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte(v)}}, a.fn)
					if !assert.Equal(t, int32(1), a.calls.Load()) || !assert.NoError(t, a.err) {
						return
					}
					carried.Add(1)
				} else {
					got, err = tail.Poll(ctx)
				}
				if ctx.Err() != nil {
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				for _, m := range got {
					assert.Greater(t, m.Offset, last, "poller %d: in offset order", id)
					last = m.Offset
					seen[m.Offset]++
				}
				if len(seen) == total {
					stop.Store(true)
				}
				mu.Unlock()
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(poller(0))
	wg.Go(poller(1))
	for i := range total {
		_, err := producer.Produce(ctx, transport.Message{Topic: "in", Value: []byte(strconv.Itoa(i))})
		require.NoError(t, err)
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let polls interleave with the arrivals
		}
	}
	require.Eventually(t, stop.Load, 30*time.Second, 10*time.Millisecond, "not every record was polled")
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for off := range int64(total) {
		assert.Equal(t, 1, seen[off], "record at offset %d", off)
	}
	out := topicValues(t, s.Broker, "out")
	assert.Len(t, out, int(carried.Load()), "each carried record written once")
	alone := rc.n("POST /produce")
	t.Logf("%d carried polls, %d of them produced alone (beside the other goroutine's Poll)", carried.Load(), alone)
	assert.Less(t, alone, int(carried.Load()), "some records rode on their fetch")
	dup := map[string]bool{}
	for _, v := range out {
		assert.False(t, dup[v], "written twice: %s", v)
		dup[v] = true
	}
}

// A carried fetch whose answer does not come before ctx ends (the server
// holds it, then serves it): acked once with an unknown outcome, and the
// records are not produced again by the client: written once.
func TestBreak8TailCarryGivenUpBeforeTheAnswer(t *testing.T) {
	s := resttest.Start(t, resttest.Config{
		Broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
	})
	release := make(chan struct{})
	var held atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fetch" && held.Load() == 1 {
			held.Store(2)
			<-release
			// Served after the client gave up: the records are
			// written by a request nobody reads the answer of.
			r = r.WithContext(context.WithoutCancel(r.Context()))
		}
		s.REST.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	t.Cleanup(func() { closeOnce(release) })
	tr := newTestTransport(t, hs.URL, WithPollWindow(100*time.Millisecond))
	tail, err := tr.Tail(t.Context(), "in")
	require.NoError(t, err)
	defer tail.Close()
	learnCarry(t, tr, tail)

	held.Store(1)
	a := newAck()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = tail.(transport.CarryingPoller).PollCarrying(ctx, []transport.Message{{Topic: "out", Value: []byte("request")}}, a.fn)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, int32(1), a.calls.Load())
	require.ErrorIs(t, a.err, transport.ErrOutcomeUnknown)
	closeOnce(release)
	require.Eventually(t, func() bool { return len(topicValues(t, s.Broker, "out")) > 0 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"request"}, topicValues(t, s.Broker, "out"), "written once, by the given-up request")
}

var closeMu sync.Mutex

// closeOnce closes ch unless it is closed.
func closeOnce(ch chan struct{}) {
	closeMu.Lock()
	defer closeMu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}
