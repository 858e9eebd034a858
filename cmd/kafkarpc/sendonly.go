package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// sendOnly is the transport of a client that only sends: notify's. A
// notification carries no reply-to and gets no reply, yet rpc.NewClient
// positions a reply reader on its reply topic (NAME.replies) before it
// returns, which on a server without auto-create fails unless that topic
// exists, and needs read rights on it. sendOnly's Tail reads nothing and
// names no topic on the server, so rpc.NewClient's reply reader is an idle
// one. The record written is rpc.Client.Notify's own.
//
// A Produce that fails calls giveUp, which cancels the notification's
// context, so that rpc.Client makes no attempt of its own after it: the
// wrapped transport already retried what was worth retrying within
// --connect-timeout, and rpc.Client's retries on top would stretch a
// refused notification (a wrong path in --url: 404, never retried by the
// transport) to the whole --timeout. (The reply reader that notify had
// before failed such a setup at once; a notification is one Produce now.)
type sendOnly struct {
	transport.Transport
	giveUp context.CancelFunc
}

// Produce is the wrapped transport's; an error ends the notification.
func (s sendOnly) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	out, err := s.Transport.Produce(ctx, msgs...)
	if err != nil {
		s.giveUp()
	}
	return out, err
}

// Tail returns a consumer that never has records: it opens nothing.
func (sendOnly) Tail(context.Context, ...string) (transport.Consumer, error) {
	return &idleConsumer{closed: make(chan struct{})}, nil
}

// idleConsumer has no records: Poll waits for its context or Close.
type idleConsumer struct {
	once   sync.Once
	closed chan struct{}
}

func (c *idleConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		return nil, fmt.Errorf("kafkarpc: send-only reply reader: %w", transport.ErrClosed)
	}
}

func (c *idleConsumer) Commit(context.Context, ...transport.Message) error { return nil }

func (c *idleConsumer) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// newNotifier is newClient for a client that only notifies: it needs no
// reply topic (see sendOnly). giveUp cancels the notification's context.
func newNotifier(e *env, giveUp context.CancelFunc) (*rpc.Client, func(), error) {
	t, err := openTransport(e.g)
	if err != nil {
		return nil, nil, err
	}
	c, err := rpc.NewClient(sendOnly{Transport: t, giveUp: giveUp}, rpc.WithName(e.g.name), rpc.WithLogger(e.log))
	if err != nil {
		t.Close()
		return nil, nil, transportErr(err)
	}
	return c, func() { c.Close(); t.Close() }, nil
}
