package upstash

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Attacks on the pooled, coalesced produce path (produceCall and its done
// channel reused once the caller took the outcome; a batch's request
// cancelled by its last caller to give up) and, end to end, on the
// decoders' string views: records produced concurrently through the real
// REST server on loopback (its pooled request buffers) and read back
// through the client (its pooled answer buffers) byte for byte.

// break9Record is the distinct record number n of writer g: keys, header
// values and values with escapes, multi-byte runes, and long and short
// strings, so that every path of the decoders is taken.
func break9Record(topic string, g, n int) transport.Message {
	tag := fmt.Sprintf("g%d-n%d", g, n)
	pad := strings.Repeat("p", (g*31+n*17)%300)
	m := transport.Message{Topic: topic, Value: []byte(tag + "-value-\"quoted\"-\\-é世😀\n" + pad)}
	switch n % 4 {
	case 0:
		m.Key = tag
	case 1:
		m.Key = tag + "-key-\t\"esc\"-" + pad
	case 2:
		m.Key = tag + "-long-key-" + strings.Repeat("k", 40) + pad
	}
	m.Headers = []transport.Header{
		{Key: "rpc-v", Value: "1"},
		{Key: "rpc-id", Value: tag + "-0190d5b2-7c1e-7a55-9c1d"},
		{Key: "h-" + tag, Value: "v\"" + tag + "\\" + pad},
		{Key: "short", Value: tag},
		{Key: "empty", Value: ""},
	}
	if n%5 == 0 {
		m.Value = []byte(tag) // values are told apart by their tag
	}
	return m
}

// break9Tag is the tag a record's value begins with.
func break9Tag(m transport.Message) string {
	v := string(m.Value)
	if i := strings.Index(v, "-value-"); i >= 0 {
		return v[:i]
	}
	return v
}

// sameRecord compares the bytes a client sent with what came back.
func sameRecord(t *testing.T, want, got transport.Message, where string) {
	t.Helper()
	assert.Equal(t, want.Key, got.Key, "%s: key", where)
	assert.Equal(t, string(want.Value), string(got.Value), "%s: value", where)
	assert.Equal(t, want.Headers, got.Headers, "%s: headers", where)
}

// brokerRecords reads every record of topic's partitions from the broker.
func brokerRecords(t *testing.T, b *memory.Broker, topic string, partitions int) []transport.Message {
	t.Helper()
	var out []transport.Message
	for p := range int32(partitions) {
		_, latest, err := b.Offsets(topic, p)
		require.NoError(t, err)
		for off := int64(0); off < latest; {
			msgs, err := b.Fetch(t.Context(), topic, p, off, 1000)
			require.NoError(t, err)
			require.NotEmpty(t, msgs)
			out = append(out, msgs...)
			off = msgs[len(msgs)-1].Offset + 1
		}
	}
	return out
}

// Many writers produce distinct records at once through the real REST
// server (memory backend) on loopback; every record is then found in the
// broker and read back through the client's consume, byte for byte: no
// key, header or value points into a request or answer buffer reused for
// another, nor into another record's bytes.
func TestBreak9ProduceConcurrentlyReadBackByteExact(t *testing.T) {
	const (
		topic      = "b9"
		partitions = 3
		writers    = 8
		each       = 40
	)
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic(topic, partitions)}})
	tr := newTestTransport(t, s.URL)

	sent := make(map[string]transport.Message)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for n := 0; n < each; {
				batch := []transport.Message{break9Record(topic, g, n)}
				if n%3 == 0 && n+1 < each {
					batch = append(batch, break9Record(topic, g, n+1))
				}
				n += len(batch)
				out, err := tr.Produce(t.Context(), batch...)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				for i, m := range out {
					sameRecord(t, batch[i], m, "produce answer")
					sent[break9Tag(m)] = batch[i]
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, sent, writers*each)

	stored := brokerRecords(t, s.Broker, topic, partitions)
	require.Len(t, stored, writers*each, "every record stored once")
	for _, m := range stored {
		want, ok := sent[break9Tag(m)]
		if assert.True(t, ok, "a stored record nobody sent: %q", m.Value) {
			sameRecord(t, want, m, "stored")
		}
	}

	c, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "b9", Topics: []string{topic}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	got := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < len(sent) {
		require.True(t, time.Now().Before(deadline), "consumed %d of %d records", len(got), len(sent))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		msgs, err := c.Poll(ctx)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
		}
		// A second answer read into the pooled buffers before the first
		// answer's records are checked.
		if len(msgs) > 0 {
			_, _ = tr.Produce(t.Context(), transport.Message{Topic: "b9-other", Key: strings.Repeat("X", 64), Value: []byte(strings.Repeat("Y", 512)),
				Headers: []transport.Header{{Key: "h", Value: strings.Repeat("Z", 64)}}})
		}
		for _, m := range msgs {
			tag := break9Tag(m)
			want, ok := sent[tag]
			if assert.True(t, ok, "a consumed record nobody sent: %q", m.Value) {
				sameRecord(t, want, m, "consumed")
			}
			got[tag]++
		}
	}
	for tag, n := range got {
		assert.Equal(t, 1, n, "record %s consumed %d times", tag, n)
	}
}

// break9Outcome is what one Produce call returned.
type break9Outcome struct {
	tag string
	out []transport.Message
	err error
}

// slowProduce delays each POST /produce by up to max, so that calls queue
// behind it and are coalesced, and callers give up at every stage.
func slowProduce(h http.Handler, most time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/produce") {
			select {
			case <-time.After(rand.N(most)):
			case <-r.Context().Done():
			}
		}
		h.ServeHTTP(w, r)
	})
}

// checkOutcomes checks each caller's outcome against the broker: a
// success names the caller's own records at positions that hold them; a
// failure is its context's (or, with closed, ErrClosed); a call that was
// never sent (a failure that does not say the request was in flight) left
// nothing in the broker; no record is stored twice.
func checkOutcomes(t *testing.T, b *memory.Broker, topic string, partitions int, outcomes []break9Outcome, closed bool) (ok, failed int) {
	t.Helper()
	stored := brokerRecords(t, b, topic, partitions)
	at := map[string]transport.Message{}
	for _, m := range stored {
		tag := break9Tag(m)
		_, dup := at[tag]
		assert.False(t, dup, "record %s stored twice", tag)
		at[tag] = m
	}
	for _, o := range outcomes {
		if o.err == nil {
			ok++
			if assert.Len(t, o.out, 1, o.tag) {
				m, found := at[o.tag]
				if assert.True(t, found, "%s: produced, but not stored", o.tag) {
					assert.Equal(t, o.tag, break9Tag(o.out[0]), "a caller got another's outcome")
					assert.Equal(t, m.Partition, o.out[0].Partition, o.tag)
					assert.Equal(t, m.Offset, o.out[0].Offset, o.tag)
				}
			}
			continue
		}
		failed++
		inFlight := strings.Contains(o.err.Error(), "in flight")
		switch {
		case errors.Is(o.err, context.Canceled), errors.Is(o.err, context.DeadlineExceeded):
		case closed && errors.Is(o.err, transport.ErrClosed):
		default:
			t.Errorf("%s: unexpected error %v", o.tag, o.err)
		}
		if !inFlight && !(closed && errors.Is(o.err, context.Canceled)) {
			_, found := at[o.tag]
			assert.False(t, found, "%s: never sent (%v), yet stored", o.tag, o.err)
		}
	}
	return ok, failed
}

// Many callers with mixed contexts (none, deadlines of every length,
// cancelled at random moments) produce through a slow server: each one
// returns once with its own outcome, the records of the successful ones
// are stored once where their answer says, those never sent are not
// stored at all, and nothing is stored twice. Run with -race and -count to
// catch a produceCall or done channel reused while someone still touches
// it.
func TestBreak9PooledProduceCallsMixedContexts(t *testing.T) {
	const (
		topic      = "b9mix"
		partitions = 2
		callers    = 24
		each       = 25
	)
	s := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithTopic(topic, partitions)}})
	hs := httptest.NewServer(slowProduce(s.REST, 3*time.Millisecond))
	t.Cleanup(hs.Close)
	tr := newTestTransport(t, hs.URL)

	outcomes := make([]break9Outcome, callers*each)
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for n := range each {
				ctx, cancel := context.WithCancel(t.Context())
				switch (g + n) % 5 {
				case 1:
					ctx, cancel = context.WithTimeout(t.Context(), rand.N(4*time.Millisecond))
				case 2:
					ctx, cancel = context.WithTimeout(t.Context(), time.Minute)
				case 3:
					stop := time.AfterFunc(rand.N(5*time.Millisecond), cancel)
					defer stop.Stop()
				case 4:
					ctx, cancel = context.WithTimeout(t.Context(), rand.N(10*time.Millisecond))
					stop := time.AfterFunc(rand.N(5*time.Millisecond), cancel)
					defer stop.Stop()
				}
				m := break9Record(topic, g, n)
				tag := break9Tag(m)
				out, err := tr.Produce(ctx, m)
				cancel()
				outcomes[g*each+n] = break9Outcome{tag: tag, out: out, err: err}
			}
		})
	}
	wg.Wait()
	ok, failed := checkOutcomes(t, s.Broker, topic, partitions, outcomes, false)
	inFlight := 0
	for _, o := range outcomes {
		if o.err != nil && strings.Contains(o.err.Error(), "in flight") {
			inFlight++
		}
	}
	t.Logf("%d produced, %d gave up (%d with the request in flight)", ok, failed, inFlight)
	assert.Positive(t, ok)
}

// Close while calls are queued behind a slow request and others are in
// flight: every caller returns, those that succeeded are stored once,
// those refused before being sent are not stored, and no goroutine is left
// (goleak, in TestMain).
func TestBreak9PooledProduceCloseMidBatch(t *testing.T) {
	const (
		topic      = "b9close"
		partitions = 1
		callers    = 16
		each       = 20
	)
	s := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithTopic(topic, partitions)}})
	hs := httptest.NewServer(slowProduce(s.REST, 4*time.Millisecond))
	t.Cleanup(hs.Close)
	tr, err := New(WithURL(hs.URL), fastBackoff, WithCloseTimeout(time.Second))
	require.NoError(t, err)

	outcomes := make([]break9Outcome, callers*each)
	var wg sync.WaitGroup
	started := make(chan struct{}, callers*each)
	for g := range callers {
		wg.Go(func() {
			for n := range each {
				m := break9Record(topic, g, n)
				started <- struct{}{}
				ctx := t.Context()
				if n%2 == 1 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, rand.N(8*time.Millisecond))
					defer cancel()
				}
				out, err := tr.Produce(ctx, m)
				outcomes[g*each+n] = break9Outcome{tag: break9Tag(m), out: out, err: err}
			}
		})
	}
	for range callers * each / 3 {
		<-started
	}
	require.NoError(t, tr.Close())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("callers still waiting 30 s after Close")
	}
	ok, failed := checkOutcomes(t, s.Broker, topic, partitions, outcomes, true)
	t.Logf("%d produced, %d failed", ok, failed)
	assert.Positive(t, failed, "Close failed nobody")
}

// A batch's callers that all give up before its request is made (between
// take and batchContext) still cancel it: watch finds nobody left.
func TestBreak9BatchWatchAllGaveUpBeforeRequest(t *testing.T) {
	w := &batchWatch{left: 3}
	for range 3 {
		w.gaveUp()
	}
	ctx, cancel := context.WithCancel(t.Context())
	w.watch(cancel)
	require.ErrorIs(t, ctx.Err(), context.Canceled, "nobody waits: the request is cancelled as it is made")

	w = &batchWatch{left: 3}
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	w.gaveUp()
	w.watch(cancel)
	w.gaveUp()
	require.NoError(t, ctx.Err(), "a caller still waits")
	w.gaveUp()
	require.ErrorIs(t, ctx.Err(), context.Canceled, "the last caller to give up cancels the request")
}
