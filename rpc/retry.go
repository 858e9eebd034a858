package rpc

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/kafkarpc/kafkarpc/transport"
)

// backoffPolicy is the exponential backoff of one kind of retry. Every
// retry in this package goes through retry, with one of the policies below.
type backoffPolicy struct {
	initial time.Duration // the first wait
	max     time.Duration // the cap on one wait
	// attempts caps the calls of op, 0 for no cap.
	attempts int
	// elapsed caps the time spent retrying, 0 for no cap.
	elapsed time.Duration
}

var (
	// pollBackoff spaces the polls of a reader whose transport fails.
	pollBackoff = backoffPolicy{initial: 10 * time.Millisecond, max: 2 * time.Second}
	// replyBackoff spaces the produce attempts of a handled request's
	// reply, dead letter or marker: the work is done, so it is worth the
	// wait, until a hard stop.
	replyBackoff = backoffPolicy{initial: 10 * time.Millisecond, max: time.Second}
	// commitBackoff spaces the retries of a failed commit.
	commitBackoff = backoffPolicy{initial: 50 * time.Millisecond, max: 2 * time.Second}
)

// newBackOff returns p as a backoff.BackOff, restarted.
func (p backoffPolicy) newBackOff() backoff.BackOff {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = p.initial
	eb.MaxInterval = p.max
	eb.Multiplier = 2
	eb.RandomizationFactor = 0.2
	eb.MaxElapsedTime = p.elapsed
	eb.Reset()
	var b backoff.BackOff = eb
	if p.attempts > 0 {
		b = backoff.WithMaxRetries(b, uint64(p.attempts-1))
	}
	return b
}

// retry calls op until it returns nil or an error marked with
// backoff.Permanent, the policy gives up, or ctx ends, waiting between
// calls as p says. notify, when not nil, is told of each failure that will
// be retried, with its attempt number (from 1). retry returns nil, the
// permanent error unwrapped, op's last error when the policy gave up, or
// ctx's error when ctx ended first.
//
// The first call costs nothing beyond op itself: the backoff is built at
// the first failure, so the common path (a produce or poll that works)
// allocates nothing here.
func retry(ctx context.Context, p backoffPolicy, op func() error, notify func(err error, attempt int)) error {
	var b backoff.BackOff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			return perm.Unwrap()
		}
		if b == nil {
			b = p.newBackOff()
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			return err
		}
		if notify != nil {
			notify(err, attempt)
		}
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// permanentProduceErr reports whether a produce failed for a reason that a
// retry cannot fix.
func permanentProduceErr(err error) bool {
	return errors.Is(err, transport.ErrClosed) || errors.Is(err, transport.ErrInvalid) ||
		errors.Is(err, transport.ErrMessageTooLarge) || errors.Is(err, transport.ErrUnknownTopic) ||
		errors.Is(err, transport.ErrUnauthenticated) || errors.Is(err, transport.ErrPermissionDenied) ||
		errors.Is(err, transport.ErrOutcomeUnknown) // a retry could write it twice; Call waits for the reply instead
}

// sleepCtx waits d or until ctx ends, reporting whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
