package kafka

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/transport"
)

// outages is a franz-go hook, shared by every client of a Transport, that
// logs a broker the clients cannot reach: a warning on the first failed
// connection of an outage (franz-go retries the requests that need that
// broker, within their deadlines, without a word), failures after it at
// debug level, and an info line when a connection to it succeeds again. As
// transport/upstash warns once per outage of its server, this warns once
// per outage of each broker: a broker that stays down while others answer
// is not warned about again each time another one answers.
//
// A connection counts as failed when franz-go could not dial the broker or
// initialize the connection for a reason that is the broker's being
// unreachable (refused, reset or timed out, a DNS failure: what New maps
// to transport.ErrUnavailable); refused credentials and a request's own
// canceled context do not.
type outages struct {
	log *slog.Logger

	mu   sync.Mutex
	down map[string]bool // host:port of the brokers in an outage
}

var _ kgo.HookBrokerConnect = (*outages)(nil)

func newOutages(log *slog.Logger) *outages {
	return &outages{log: log, down: make(map[string]bool)}
}

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (o *outages) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	ctx := context.Background()
	if err == nil {
		if o.mark(addr, false) {
			o.log.LogAttrs(ctx, slog.LevelInfo, "kafka: the broker answers again", slog.String("broker", addr))
		}
		return
	}
	if !unreachable(err) {
		return
	}
	if o.mark(addr, true) {
		o.log.LogAttrs(ctx, slog.LevelWarn, "kafka: cannot connect to broker "+addr+
			"; franz-go retries the requests that need it until their deadlines (a caller's context, Produce's, "+
			"the setup timeout); further failures are logged at debug level until it answers",
			slog.String("broker", addr), slog.String("error", err.Error()))
		return
	}
	o.log.LogAttrs(ctx, slog.LevelDebug, "kafka: cannot connect to broker",
		slog.String("broker", addr), slog.String("error", err.Error()))
}

// mark records whether the broker at addr is down and reports whether
// that changed.
func (o *outages) mark(addr string, down bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down[addr] == down {
		return false
	}
	if down {
		o.down[addr] = true
	} else {
		delete(o.down, addr)
	}
	return true
}

// unreachable says a connection failed because its broker cannot be
// reached.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isNetError(err) {
		return false
	}
	return errors.Is(mapErr(err), transport.ErrUnavailable)
}
