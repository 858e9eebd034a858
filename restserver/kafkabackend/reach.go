package kafkabackend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/restserver"
)

// reach records how the backend's clients' last dials to the brokers went
// (a kgo.HookBrokerConnect on every client it makes). With the brokers
// down, an operation may fail with the refused dial (mapped to
// restserver.ErrUnavailable: 503) or, when kgo keeps retrying the dial, with
// its context's deadline: that deadline is the brokers' absence too, and
// explain says so, so that the answer does not depend on which came first.
// Safe for concurrent use.
type reach struct {
	failAt, okAt atomic.Int64 // Unix ns of the last failed and the last good dial
	lastErr      atomic.Pointer[string]
}

var _ kgo.HookBrokerConnect = (*reach)(nil)

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (r *reach) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	now := time.Now().UnixNano()
	if err != nil {
		msg := err.Error()
		r.lastErr.Store(&msg)
		r.failAt.Store(now)
		return
	}
	r.okAt.Store(now)
}

// down reports whether the last dial to a broker failed, and how.
func (r *reach) down() (string, bool) {
	fail := r.failAt.Load()
	if fail == 0 || fail < r.okAt.Load() {
		return "", false
	}
	msg := "dial failed"
	if p := r.lastErr.Load(); p != nil {
		msg = *p
	}
	return msg, true
}

// explain rewrites *err, when it is a context deadline that ran out while
// the last dial to a broker had failed, into an error wrapping
// restserver.ErrUnavailable (503, retry) and the deadline. Other errors are
// left as they are. what says what was being done.
func (r *reach) explain(what string, err *error) {
	if *err == nil || !errors.Is(*err, context.DeadlineExceeded) || errors.Is(*err, restserver.ErrUnavailable) {
		return
	}
	if msg, down := r.down(); down {
		*err = fmt.Errorf("kafkabackend: %s: the brokers cannot be reached (last dial: %s), retry shortly: %w (%w)", what, msg, restserver.ErrUnavailable, *err)
	}
}
