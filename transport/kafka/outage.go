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
//
// A seed broker (Brokers) is another name of a broker the cluster
// advertises under its own host:port ("kafka:9092", a bootstrap address,
// against "kafka-0.kafka:9092"): once a broker the cluster advertised has
// answered, a seed that cannot be reached is logged at debug level, its
// outage being the advertised brokers' (warned about under their names);
// before that, a seed is all there is, and warned about as a broker.
type outages struct {
	log *slog.Logger

	mu         sync.Mutex
	down       map[string]bool // host:port of the brokers in an outage
	downSeeds  map[string]bool // host:port of the seeds in an outage (warned about)
	discovered bool            // a broker the cluster advertised has answered
}

var _ kgo.HookBrokerConnect = (*outages)(nil)

func newOutages(log *slog.Logger) *outages {
	return &outages{log: log, down: make(map[string]bool), downSeeds: make(map[string]bool)}
}

// isSeed says meta is a seed broker's (franz-go numbers seeds from
// math.MinInt32; the brokers the cluster advertises have their node ids).
func isSeed(meta kgo.BrokerMetadata) bool { return meta.NodeID < 0 }

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (o *outages) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	ctx := context.Background()
	if isSeed(meta) {
		o.seed(ctx, addr, err)
		return
	}
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
		o.warn(ctx, addr, err)
		return
	}
	o.log.LogAttrs(ctx, slog.LevelDebug, "kafka: cannot connect to broker",
		slog.String("broker", addr), slog.String("error", err.Error()))
}

// warn logs the first failed connection to the broker at addr in an
// outage.
func (o *outages) warn(ctx context.Context, addr string, err error) {
	o.log.LogAttrs(ctx, slog.LevelWarn, "kafka: cannot connect to broker "+addr+
		"; franz-go retries the requests that need it until their deadlines (a caller's context, Produce's, "+
		"the setup timeout); further failures are logged at debug level until it answers",
		slog.String("broker", addr), slog.String("error", err.Error()))
}

// seed logs a connection to the seed broker at addr that ended with err.
func (o *outages) seed(ctx context.Context, addr string, err error) {
	o.mu.Lock()
	warn, again := false, false
	switch {
	case err == nil:
		again = o.downSeeds[addr]
		delete(o.downSeeds, addr)
	case !unreachable(err):
	case !o.discovered && !o.downSeeds[addr]:
		o.downSeeds[addr] = true
		warn = true
	}
	o.mu.Unlock()
	switch {
	case again:
		o.log.LogAttrs(ctx, slog.LevelInfo, "kafka: the broker answers again", slog.String("broker", addr))
	case warn:
		o.warn(ctx, addr, err)
	case err != nil && unreachable(err):
		o.log.LogAttrs(ctx, slog.LevelDebug, "kafka: cannot connect to broker",
			slog.String("broker", addr), slog.String("error", err.Error()))
	}
}

// mark records whether the broker at addr, one the cluster advertised, is
// down and reports whether that changed. Its answer (down false) ends the
// outages of the seeds: they are its, or its cluster's, other names.
func (o *outages) mark(addr string, down bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !down {
		o.discovered = true
		clear(o.downSeeds)
	}
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
