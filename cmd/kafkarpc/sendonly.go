package main

import (
	"context"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// sendOnly is the transport of a client that only sends: notify's and
// send's, made with rpc.WithoutReplies, so that it needs no reply topic
// (NAME.replies) on the server, nor read rights on one.
//
// A Produce that fails calls giveUp, which cancels the request's context,
// so that rpc.Client makes no attempt of its own after it: the wrapped
// transport already retried what was worth retrying within
// --connect-timeout, and rpc.Client's retries on top would stretch a
// request to an unreachable server to its call timeout (30 s).
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

// newSender is newClient for a client that only sends (notify, send): it
// needs no reply topic (see sendOnly). giveUp cancels the request's
// context. It returns the transport too, unwrapped.
func newSender(e *env, giveUp context.CancelFunc, opts ...rpc.ClientOption) (*rpc.Client, transport.Transport, func(), error) {
	t, err := openTransport(e.g)
	if err != nil {
		return nil, nil, nil, err
	}
	opts = append([]rpc.ClientOption{rpc.WithName(e.g.name), rpc.WithLogger(e.log), rpc.WithoutReplies()}, opts...)
	c, err := rpc.NewClient(sendOnly{Transport: t, giveUp: giveUp}, opts...)
	if err != nil {
		t.Close()
		return nil, nil, nil, transportErr(err)
	}
	return c, t, func() { c.Close(); t.Close() }, nil
}
