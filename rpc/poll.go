package rpc

import (
	"context"
	"errors"
	"log/slog"

	"github.com/cenkalti/backoff/v4"

	"github.com/kafkarpc/kafkarpc/transport"
)

// pollRetrying is the loop of every reader in this package: it polls c and
// passes each batch to handle until ctx ends, c is closed or fenced, or
// handle returns false. Other poll errors are transient: logged (when log is
// not nil) and retried with pollBackoff. It returns nil when ctx ended, c was
// closed or handle stopped it, and the error when c was fenced or closed
// under it, for callers that must report that.
func pollRetrying(ctx context.Context, c transport.Consumer, log *slog.Logger, what string, handle func([]transport.Message) bool) error {
	notify := func(err error, failures int) {
		if log != nil {
			log.Warn("rpc: "+what+" poll failed; retrying", "err", err, "failures", failures)
		}
	}
	for {
		var msgs []transport.Message
		err := retry(ctx, pollBackoff, func() error {
			var err error
			msgs, err = c.Poll(ctx)
			switch {
			case err == nil:
				return nil
			case ctx.Err() != nil, errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrFenced):
				return backoff.Permanent(err)
			}
			return err
		}, notify)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !handle(msgs) {
			return nil
		}
	}
}

// pollAppender is implemented by a consumer that can poll into the
// caller's buffer, as memory.Consumer.PollAppend does.
type pollAppender interface {
	PollAppend(ctx context.Context, dst []transport.Message) ([]transport.Message, error)
}

// reusingConsumer is a consumer whose Poll returns its records in one
// buffer, reused from one Poll to the next: for a reader that is done with
// a batch (has copied what it keeps of its records) before it polls again,
// as Serve's poll loop is. It is used by one goroutine at a time.
type reusingConsumer struct {
	transport.Consumer
	pa  pollAppender
	buf []transport.Message // the last batch
}

// newReusingConsumer returns c as a reusingConsumer, or c itself when it
// cannot poll into a buffer.
func newReusingConsumer(c transport.Consumer) transport.Consumer {
	pa, ok := c.(pollAppender)
	if !ok {
		return c
	}
	return &reusingConsumer{Consumer: c, pa: pa}
}

func (rc *reusingConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	clear(rc.buf) // the buffer keeps no record of the last batch alive
	msgs, err := rc.pa.PollAppend(ctx, rc.buf[:0])
	if len(msgs) > 0 {
		rc.buf = msgs
	} else {
		rc.buf = rc.buf[:0]
	}
	return msgs, err
}
