package rpctest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

type mutant struct {
	inner *memory.Broker
	kind  string
}

func (m mutant) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	in := append([]transport.Message(nil), msgs...)
	for i := range in {
		switch m.kind {
		case "ignore-manual":
			in[i].ManualPartition = false
		case "random-key":
			if in[i].Key != "" && !in[i].ManualPartition {
				in[i].ManualPartition, in[i].Partition = true, int32(time.Now().UnixNano()%3)
			}
		case "keyless-p0":
			if in[i].Key == "" && !in[i].ManualPartition {
				in[i].ManualPartition, in[i].Partition = true, 0
			}
		case "allow-bad-partition":
			if in[i].Partition < 0 || int(in[i].Partition) >= 3 {
				in[i].Partition = 0
			}
		}
	}
	if m.kind == "partial-batch" && len(in) > 1 {
		out, err := m.inner.Produce(ctx, in[0])
		if err != nil {
			return out, err
		}
		_, err = m.inner.Produce(ctx, in[1:]...)
		if err != nil {
			return nil, err
		}
	}
	out, err := m.inner.Produce(ctx, in...)
	for i := range out {
		switch m.kind {
		case "drop-headers":
			out[i].Headers = nil
		case "time-not-ms":
			out[i].Time = out[i].Time.Add(123 * time.Microsecond)
		}
	}
	return out, err
}

func (m mutant) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	if m.kind == "latest-is-earliest" {
		s.Start = transport.StartEarliest
	}
	if m.kind == "no-session" {
		s.SessionTimeout = 0
	}
	if m.kind == "no-validate" && s.Group == "" {
		s.Group = "x"
	}
	c, err := m.inner.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	return &mcons{Consumer: c, kind: m.kind}, nil
}

func (m mutant) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	if m.kind == "tail-earliest" {
		return m.inner.Subscribe(ctx, transport.Subscription{Group: fmt.Sprint(time.Now().UnixNano()), Topics: topics, Start: transport.StartEarliest})
	}
	c, err := m.inner.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	return &mcons{Consumer: c, kind: m.kind}, nil
}

func (m mutant) Close() error {
	if m.kind == "close-err" {
		m.inner.Close()
		return errors.New("boom")
	}
	return m.inner.Close()
}

type mcons struct {
	transport.Consumer
	kind string
	mu   sync.Mutex
	last []transport.Message
	n    int
}

func (c *mcons) Poll(ctx context.Context) ([]transport.Message, error) {
	switch c.kind {
	case "hang":
		select {}
	case "poll-ignores-ctx":
		return c.Consumer.Poll(context.WithoutCancel(ctx))
	case "lossy-cancel":
		for {
			ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 50*time.Millisecond)
			msgs, err := c.Consumer.Poll(ictx)
			cancel()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return msgs, err
			}
			if len(msgs) > 0 {
				return msgs, nil
			}
		}
	case "fence-as-closed":
		msgs, err := c.Consumer.Poll(ctx)
		if errors.Is(err, transport.ErrFenced) {
			err = transport.ErrClosed
		}
		return msgs, err
	case "slow-wake":
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(6 * time.Second):
		}
		return c.Consumer.Poll(ctx)
	}
	msgs, err := c.Consumer.Poll(ctx)
	if c.kind == "dup-one" && len(msgs) > 0 {
		c.mu.Lock()
		c.n++
		if c.n == 2 {
			msgs = append([]transport.Message{msgs[0]}, msgs...)
		}
		c.mu.Unlock()
	}
	return msgs, err
}

func (c *mcons) Commit(ctx context.Context, msgs ...transport.Message) error {
	switch c.kind {
	case "commit-noop":
		return nil
	case "commit-swallow":
		if err := c.Consumer.Commit(ctx, msgs...); !errors.Is(err, transport.ErrNotAssigned) {
			return err
		}
		return nil
	case "commit-partial":
		err := c.Consumer.Commit(ctx, msgs...)
		if errors.Is(err, transport.ErrNotAssigned) {
			for _, m := range msgs {
				_ = c.Consumer.Commit(ctx, m)
			}
		}
		return err
	case "commit-off-by-one":
		in := append([]transport.Message(nil), msgs...)
		for i := range in {
			in[i].Offset--
		}
		return c.Consumer.Commit(ctx, in...)
	case "commit-last-only":
		if len(msgs) > 0 {
			msgs = msgs[len(msgs)-1:]
		}
	}
	return c.Consumer.Commit(ctx, msgs...)
}

func (c *mcons) Close() error {
	if c.kind == "close-noop" {
		return nil
	}
	return c.Consumer.Close()
}

func TestMutant(t *testing.T) {
	kind := os.Getenv("MUTANT")
	if kind == "" {
		t.Skip()
	}
	rpctest.TestTransport(t, func(t testing.TB) transport.Transport {
		return mutant{inner: memory.New(memory.WithPartitions(3), memory.WithMaxMessageBytes(64<<10), memory.WithMaxPollRecords(7)), kind: kind}
	}, rpctest.Features{Partitions: 3, SessionTimeout: true, MaxMessageBytes: 64 << 10})
}
