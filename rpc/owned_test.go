package rpc

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A reply and its dedup marker share one header array when they are handed
// over to the embedded broker (ProduceOwned): read back, the reply has its
// own headers only, the marker the reply's and the dedup ones, and a
// reader's append to the reply's headers does not reach the marker.
func TestOwnedReplyAndMarker(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(b, WithName("srv"), quiet)
	require.NoError(t, err)
	Handle(s, "owned", func(ctx context.Context, n int) (int, error) { return n + 1, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(b, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()
	require.NotNil(t, s.p.own, "the server hands records over to the embedded broker")
	require.NotNil(t, c.p.own, "so does the client")

	got, err := Call[int](context.Background(), c, "owned", 41, WithTimeout(5*time.Second))
	require.NoError(t, err)
	assert.Equal(t, 42, got)

	replies, err := b.Fetch(context.Background(), "cli.replies", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, replies, 1)
	reply := replies[0]
	for _, h := range reply.Headers {
		assert.False(t, strings.HasPrefix(h.Key, "rpc-dedup-"), "the reply carries no dedup header: %v", reply.Headers)
	}
	markers, err := b.Fetch(context.Background(), "srv.handled", 0, 0, 100)
	require.NoError(t, err)
	var marker *transport.Message
	for i := range markers {
		if of, _ := markers[i].Header(headerDedupOf); of != "" {
			marker = &markers[i]
		}
	}
	require.NotNil(t, marker, "the marker was written")
	id, _ := reply.Header(HeaderCorrelationID)
	of, _ := marker.Header(headerDedupOf)
	assert.Equal(t, id, of)
	assert.Equal(t, "42", string(marker.Value), "the marker carries the reply")
	before := append([]transport.Header(nil), marker.Headers...)

	// A careless reader appends to the reply's headers: the stored marker
	// is not changed.
	_ = append(reply.Headers, transport.Header{Key: "x", Value: "y"}, transport.Header{Key: "x", Value: "y"})
	again, err := b.Fetch(context.Background(), "srv.handled", 0, marker.Offset, 1)
	require.NoError(t, err)
	require.Len(t, again, 1)
	assert.Equal(t, before, again[0].Headers)

	e, ok := entryFromMarker(marker)
	require.True(t, ok)
	stored := e.reply.Load()
	require.NotNil(t, stored)
	assert.Equal(t, "cli.replies", stored.Topic)
	assert.Equal(t, len(reply.Headers), len(stored.Headers), "the marker gives back the reply's headers exactly")
}

// A payload given as []byte is the caller's: its record is copied, so the
// caller may reuse the buffer once Call returns.
func TestCallerBufferNotHandedOver(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(b, WithName("srv"), quiet)
	require.NoError(t, err)
	Handle(s, "raw", func(ctx context.Context, n int) (int, error) { return n, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(b, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()

	buf := []byte("7")
	_, err = c.Call(context.Background(), "raw", buf, WithTimeout(5*time.Second))
	require.NoError(t, err)
	buf[0] = '9' // reused by the caller
	reqs, err := b.Fetch(context.Background(), "raw", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, reqs, 1)
	assert.Equal(t, "7", string(reqs[0].Value), "the stored request is the broker's copy")
}

// failOnceOwned is the embedded broker whose first ProduceOwned of a batch
// fills the records in place, as a failed durable append may have, and
// fails; it records what each later call was given.
type failOnceOwned struct {
	*memory.Broker
	mu     sync.Mutex
	failed bool
	seen   [][]transport.Message
}

func (f *failOnceOwned) ProduceOwned(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	f.mu.Lock()
	if !f.failed && len(msgs) == 2 {
		f.failed = true
		f.mu.Unlock()
		for i := range msgs {
			msgs[i].Partition, msgs[i].ManualPartition, msgs[i].Offset = 7, false, 123
		}
		return nil, errors.New("disk write failed")
	}
	f.seen = append(f.seen, append([]transport.Message(nil), msgs...))
	f.mu.Unlock()
	return f.Broker.ProduceOwned(ctx, msgs...)
}

// A reply and marker whose ProduceOwned failed after filling them in are
// sent again as they were: the marker still pinned to its partition.
func TestOwnedRetrySendsPristineRecords(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	f := &failOnceOwned{Broker: b}
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	s, err := NewServer(f, WithName("srv"), quiet)
	require.NoError(t, err)
	Handle(s, "retry", func(ctx context.Context, n int) (int, error) { return n, nil })
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); require.NoError(t, <-served) }()
	c, err := NewClient(b, WithName("cli"), quiet)
	require.NoError(t, err)
	defer c.Close()

	got, err := Call[int](context.Background(), c, "retry", 5, WithTimeout(10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, 5, got)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.True(t, f.failed)
	var retried []transport.Message
	for _, batch := range f.seen {
		if len(batch) == 2 {
			retried = batch
		}
	}
	require.NotNil(t, retried, "the batch was sent again")
	// The marker goes first (see sendReply).
	assert.True(t, retried[0].ManualPartition, "the marker is pinned again")
	assert.Equal(t, dedupPartition, retried[0].Partition)
	assert.Equal(t, "srv.handled", retried[0].Topic)
}
