package rpc

import (
	"context"
	"errors"
	"log/slog"

	"github.com/kafkarpc/kafkarpc/transport"
)

// pollRetrying is the loop of every reader in this package: it polls c and
// passes each batch to handle until ctx ends, c is closed or fenced, or
// handle returns false. Other poll errors are transient: logged (when log is
// not nil) and retried with backoff. It returns nil when ctx ended, c was
// closed or handle stopped it, and the error when c was fenced or closed
// under it, for callers that must report that.
func pollRetrying(ctx context.Context, c transport.Consumer, log *slog.Logger, what string, handle func([]transport.Message) bool) error {
	var failures int
	for {
		msgs, err := c.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, transport.ErrClosed) || errors.Is(err, transport.ErrFenced) {
				return err
			}
			failures++
			if log != nil {
				log.Warn("rpc: "+what+" poll failed; retrying", "err", err, "failures", failures)
			}
			if !sleepCtx(ctx, retryDelay(failures)) {
				return nil
			}
			continue
		}
		failures = 0
		if !handle(msgs) {
			return nil
		}
	}
}
