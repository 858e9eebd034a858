package upstash

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

func TestProduceWireFormat(t *testing.T) {
	srv := newScripted(t, response{200, `[` +
		`{"topic":"a","partition":2,"offset":10,"timestamp":1700000000123},` +
		`{"topic":"b","partition":1,"offset":11,"timestamp":1700000000124}]`, nil})
	tr := newTestTransport(t, srv.URL)
	given := time.UnixMilli(1600000000999)
	in := []transport.Message{
		{Topic: "a", Key: "k", Value: []byte(`{"x":"<&>"}`), Time: given,
			Headers: []transport.Header{{Key: "h", Value: "1"}, {Key: "h", Value: "2"}}},
		{Topic: "b", Partition: 1, ManualPartition: true, Value: []byte("héllo\x00")},
	}
	out, err := tr.Produce(t.Context(), in...)
	require.NoError(t, err)

	var sent []map[string]any
	require.NoError(t, json.Unmarshal([]byte(srv.body(0)), &sent))
	assert.Equal(t, []map[string]any{
		{"topic": "a", "key": "k", "value": `{"x":"<&>"}`, "timestamp": float64(1600000000999),
			"headers": []any{map[string]any{"key": "h", "value": "1"}, map[string]any{"key": "h", "value": "2"}}},
		{"topic": "b", "partition": float64(1), "value": "héllo\x00"},
	}, sent, "partition only when manual, timestamp only when set, headers as [{key,value}]")
	assert.Contains(t, srv.body(0), `<&>`, "no HTML escaping")
	assert.Equal(t, "application/json", srv.header(0).Get("Content-Type"))

	require.Len(t, out, 2)
	assert.Equal(t, int32(2), out[0].Partition)
	assert.Equal(t, int64(10), out[0].Offset)
	assert.True(t, out[0].Time.Equal(time.UnixMilli(1700000000123)))
	assert.Equal(t, in[0].Headers, out[0].Headers)
	assert.Equal(t, int32(1), out[1].Partition)
	assert.False(t, out[1].ManualPartition, "ManualPartition is false on returned messages")
	assert.True(t, in[1].ManualPartition, "the caller's messages are not modified")
}

func TestProduceRejectsLocally(t *testing.T) {
	srv := newScripted(t, response{200, okProduce, nil})
	tr := newTestTransport(t, srv.URL)
	tests := []struct {
		name string
		msg  transport.Message
		want string
	}{
		{"EmptyTopic", transport.Message{Value: []byte("v")}, "empty topic"},
		{"NegativePartition", transport.Message{Topic: "t", Partition: -1, ManualPartition: true}, "negative partition"},
		{"BinaryValue", transport.Message{Topic: "t", Value: []byte{0xff, 0xfe}}, "value is not valid UTF-8"},
		{"BinaryKey", transport.Message{Topic: "t", Key: "\xc3"}, "key is not valid UTF-8"},
		{"TimeBefore1970", transport.Message{Topic: "t", Time: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}, "not after 1970"},
		{"BinaryHeader", transport.Message{Topic: "t", Headers: []transport.Header{{Key: "h", Value: "\xff"}}}, `header "h" is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := transport.Message{Topic: "t", Value: []byte("fine")}
			out, err := tr.Produce(t.Context(), good, tt.msg)
			require.ErrorIs(t, err, transport.ErrInvalid)
			assert.ErrorContains(t, err, "message 1")
			assert.ErrorContains(t, err, tt.want)
			assert.Empty(t, out)
		})
	}
	assert.Equal(t, int64(0), srv.requests.Load(), "nothing is sent when a message is refused")

	out, err := tr.Produce(t.Context())
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, int64(0), srv.requests.Load(), "Produce of nothing sends nothing")
}

func TestProduceResponseMismatch(t *testing.T) {
	srv := newScripted(t, response{200, `[]`, nil})
	tr := newTestTransport(t, srv.URL)
	_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.ErrorContains(t, err, "answered 0 results for 1 messages")

	srv2 := newScripted(t, response{200, `[{"topic":"t","partition":0,"offset":1,"error":"broker said no"}]`, nil})
	tr2 := newTestTransport(t, srv2.URL)
	_, err = tr2.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.ErrorContains(t, err, "broker said no")
}

// gate is a /produce server that holds the first request until released,
// answers offsets 0..n-1 in request order, and records the batch sizes.
type gate struct {
	*httptest.Server
	release chan struct{}
	arrived chan struct{}
	mu      sync.Mutex
	sizes   []int
	next    atomic.Int64
	fail    func(batch []restwire.TopicMessage) (int, string) // optional refusal
}

func newGate(t testing.TB) *gate {
	g := &gate{release: make(chan struct{}), arrived: make(chan struct{}, 1)}
	first := atomic.Bool{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var batch []restwire.TopicMessage
		if err := json.Unmarshal(b, &batch); err != nil {
			http.Error(w, `{"error":"bad json","status":400}`, 400)
			return
		}
		if first.CompareAndSwap(false, true) {
			g.arrived <- struct{}{}
			<-g.release
		}
		g.mu.Lock()
		g.sizes = append(g.sizes, len(batch))
		g.mu.Unlock()
		if g.fail != nil {
			if status, msg := g.fail(batch); status != 0 {
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":%q,"status":%d}`, msg, status)
				return
			}
		}
		meta := make([]restwire.Metadata, len(batch))
		for i, m := range batch {
			meta[i] = restwire.Metadata{Topic: m.Topic, Offset: g.next.Add(1) - 1, Timestamp: 1}
		}
		_ = json.NewEncoder(w).Encode(meta)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gate) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

func (tr *Transport) queued() int {
	tr.producer.mu.Lock()
	defer tr.producer.mu.Unlock()
	return len(tr.producer.queue)
}

// While one produce request is in flight, later calls queue and all go out
// together in the next request; each caller gets its own records back.
func TestProduceCoalesces(t *testing.T) {
	g := newGate(t)
	tr := newTestTransport(t, g.URL)

	type result struct {
		out []transport.Message
		err error
	}
	first := make(chan result, 1)
	go func() {
		out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("first")})
		first <- result{out, err}
	}()
	<-g.arrived // the first request is in flight and held

	const callers = 20
	results := make([]chan result, callers)
	for i := range callers {
		results[i] = make(chan result, 1)
		go func() {
			msgs := []transport.Message{
				{Topic: "t", Value: fmt.Appendf(nil, "c%d-a", i)},
				{Topic: "t", Value: fmt.Appendf(nil, "c%d-b", i)},
			}
			out, err := tr.Produce(t.Context(), msgs...)
			results[i] <- result{out, err}
		}()
	}
	require.Eventually(t, func() bool { return tr.queued() == callers }, 5*time.Second, time.Millisecond)
	close(g.release)

	r := <-first
	require.NoError(t, r.err)
	require.Len(t, r.out, 1)
	assert.Equal(t, "first", string(r.out[0].Value))
	seen := map[int64]bool{}
	for i := range callers {
		r := <-results[i]
		require.NoError(t, r.err)
		require.Len(t, r.out, 2)
		assert.Equal(t, fmt.Sprintf("c%d-a", i), string(r.out[0].Value))
		assert.Equal(t, fmt.Sprintf("c%d-b", i), string(r.out[1].Value))
		assert.Equal(t, r.out[0].Offset+1, r.out[1].Offset, "a caller's records are adjacent and in order")
		seen[r.out[0].Offset], seen[r.out[1].Offset] = true, true
	}
	assert.Len(t, seen, 2*callers, "every record has its own offset")
	assert.Equal(t, []int{1, 2 * callers}, g.batchSizes(), "one request for the first call, one for all queued calls")
}

func TestProduceBatchCaps(t *testing.T) {
	g := newGate(t)
	tr := newTestTransport(t, g.URL, WithMaxBatch(5))
	done := make(chan error, 8)
	go func() {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("first")})
		done <- err
	}()
	<-g.arrived
	// Calls of 2, 2, 2, 6 messages: 2+2 fit under 5, the third 2 starts the
	// next request, the 6 exceeds the cap and goes alone.
	sizes := []int{2, 2, 2, 6}
	for i, n := range sizes {
		go func() {
			msgs := make([]transport.Message, n)
			for j := range msgs {
				msgs[j] = transport.Message{Topic: "t", Value: []byte("v")}
			}
			_, err := tr.Produce(t.Context(), msgs...)
			done <- err
		}()
		require.Eventually(t, func() bool { return tr.queued() == i+1 }, 5*time.Second, time.Millisecond)
	}
	close(g.release)
	for range len(sizes) + 1 {
		require.NoError(t, <-done)
	}
	assert.Equal(t, []int{1, 4, 2, 6}, g.batchSizes())
}

// A 4xx for a coalesced request is retried call by call, so one caller's
// unknown topic does not fail the others.
func TestProduceSplitsRefusedBatch(t *testing.T) {
	g := newGate(t)
	g.fail = func(batch []restwire.TopicMessage) (int, string) {
		for _, m := range batch {
			if m.Topic == "missing" {
				return 404, `memory: produce to "missing": transport: unknown topic`
			}
		}
		return 0, ""
	}
	tr := newTestTransport(t, g.URL)
	first := make(chan error, 1)
	go func() {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("first")})
		first <- err
	}()
	<-g.arrived
	errs := make([]chan error, 3)
	for i, topic := range []string{"t", "missing", "t"} {
		errs[i] = make(chan error, 1)
		go func() {
			_, err := tr.Produce(t.Context(), transport.Message{Topic: topic, Value: []byte("v")})
			errs[i] <- err
		}()
		require.Eventually(t, func() bool { return tr.queued() == i+1 }, 5*time.Second, time.Millisecond)
	}
	close(g.release)
	require.NoError(t, <-first)
	require.NoError(t, <-errs[0])
	require.ErrorIs(t, <-errs[1], transport.ErrUnknownTopic)
	require.NoError(t, <-errs[2])
	assert.Equal(t, []int{1, 3, 1, 1, 1}, g.batchSizes())
}

// A caller whose context ends while its call is queued leaves the queue and
// its records are never sent.
func TestProduceCancelWhileQueued(t *testing.T) {
	g := newGate(t)
	tr := newTestTransport(t, g.URL)
	first := make(chan error, 1)
	go func() {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("first")})
		first <- err
	}()
	<-g.arrived
	ctx, cancel := context.WithCancel(t.Context())
	queued := make(chan error, 1)
	go func() {
		_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("cancelled")})
		queued <- err
	}()
	require.Eventually(t, func() bool { return tr.queued() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-queued, context.Canceled)
	assert.Equal(t, 0, tr.queued())
	close(g.release)
	require.NoError(t, <-first)
	assert.Equal(t, []int{1}, g.batchSizes(), "the cancelled call was not sent")
}

// Close fails queued calls with ErrClosed and lets the in-flight one finish.
func TestProduceClose(t *testing.T) {
	g := newGate(t)
	tr, err := New(WithURL(g.URL), fastBackoff)
	require.NoError(t, err)
	first := make(chan error, 1)
	go func() {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("first")})
		first <- err
	}()
	<-g.arrived
	queued := make(chan error, 1)
	go func() {
		_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("queued")})
		queued <- err
	}()
	require.Eventually(t, func() bool { return tr.queued() == 1 }, 5*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	require.ErrorIs(t, <-queued, transport.ErrClosed)
	close(g.release)
	require.NoError(t, <-first, "the in-flight request finishes")
	require.NoError(t, <-closed)
	_, err = tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("late")})
	require.ErrorIs(t, err, transport.ErrClosed)
	require.NoError(t, tr.Close(), "Close is idempotent")
}

// A request carrying several callers' records runs on while any of them
// still waits (one caller's cancellation does not cut the others' request
// short) and is cancelled once every one of them has given up.
func TestProduceBatchEndsWithItsLastCaller(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all=%v", all), func(t *testing.T) {
			var n atomic.Int64
			first, batch := make(chan struct{}), make(chan struct{}, 1)
			release := make(chan struct{})
			ended := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				var msgs []restwire.TopicMessage
				if err := json.Unmarshal(b, &msgs); err != nil {
					http.Error(w, `{"error":"bad json","status":400}`, 400)
					return
				}
				switch n.Add(1) {
				case 1:
					<-first
				case 2:
					batch <- struct{}{}
					select {
					case <-release:
					case <-r.Context().Done():
						ended <- r.Context().Err()
						return
					}
				}
				meta := make([]restwire.Metadata, len(msgs))
				for i, m := range msgs {
					meta[i] = restwire.Metadata{Topic: m.Topic, Offset: int64(i), Timestamp: 1}
				}
				_ = json.NewEncoder(w).Encode(meta)
			}))
			defer srv.Close()
			tr := newTestTransport(t, srv.URL)

			firstDone := make(chan error, 1)
			go func() {
				_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("first")})
				firstDone <- err
			}()
			require.Eventually(t, func() bool { return n.Load() == 1 }, 5*time.Second, time.Millisecond)
			const callers = 3
			cancels := make([]context.CancelFunc, callers)
			errs := make(chan error, callers)
			for i := range callers {
				ctx, cancel := context.WithCancel(t.Context())
				cancels[i] = cancel
				defer cancel()
				go func() {
					_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("v")})
					errs <- err
				}()
				require.Eventually(t, func() bool { return tr.queued() == i+1 }, 5*time.Second, time.Millisecond)
			}
			close(first)
			require.NoError(t, <-firstDone)
			<-batch // the three calls' request is in flight

			gaveUp := callers - 1
			if all {
				gaveUp = callers
			}
			for i := range gaveUp {
				cancels[i]()
				err := <-errs
				require.ErrorIs(t, err, context.Canceled)
				assert.ErrorContains(t, err, "in flight")
			}
			if all {
				select {
				case err := <-ended:
					require.ErrorIs(t, err, context.Canceled, "the request ends with its last caller")
				case <-time.After(10 * time.Second):
					t.Fatal("the request ran on after every caller gave up")
				}
				return
			}
			close(release)
			require.NoError(t, <-errs, "the last caller's request ran on")
			select {
			case err := <-ended:
				t.Fatalf("the request was cancelled with a caller still waiting: %v", err)
			default:
			}
		})
	}
}
