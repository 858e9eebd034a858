package memory

import (
	"context"

	"github.com/kafkarpc/kafkarpc/transport"
)

// tailConsumer is the Consumer Tail returns: a group-free *Consumer that
// also implements transport.CarryingPoller, so that code written for a
// reply reader that carries its requests (an rpc client) runs the same on
// the embedded broker. There is no exchange to save here: PollCarrying is
// Produce, then Poll.
//
// Group members (Subscribe) do not implement the capability: an rpc server
// would then hold its replies for its next poll, which on the embedded
// broker saves nothing.
type tailConsumer struct{ *Consumer }

var _ transport.CarryingPoller = (*tailConsumer)(nil)

// PollCarrying implements transport.CarryingPoller: it produces msgs with
// the broker's Produce (the same validation, all or nothing, the same
// errors), calls acked with the outcome, and, if the produce succeeded,
// polls as Poll does. With no msgs, acked gets an empty result and it is
// Poll. After Close or the broker's Close, or with ctx ended, nothing is
// produced: acked and PollCarrying get the error Poll would return. Safe
// for concurrent use as Poll is.
func (c *tailConsumer) PollCarrying(ctx context.Context, msgs []transport.Message, acked func(written []transport.Message, err error)) ([]transport.Message, error) {
	if len(msgs) == 0 {
		acked([]transport.Message{}, nil)
		return c.Poll(ctx)
	}
	err := c.check()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		acked(nil, err)
		return nil, err
	}
	out, err := c.b.Produce(ctx, msgs...)
	acked(out, err)
	if err != nil {
		return nil, err
	}
	return c.Poll(ctx)
}
