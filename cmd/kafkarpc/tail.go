package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// maxTracked bounds the requests tail remembers to time their replies.
const maxTracked = 100_000

var cmdTail = &command{
	name:  "tail",
	short: "print the envelopes flowing through topics, with reply latency",
	args:  "TOPIC...",
	summary: "Print the records produced to TOPICs from now on, decoded: kind (request, reply, notify, progress, legacy), id, " +
		"correlation, sender, method, error code, and for a reply whose request was seen, the latency between the two records' timestamps. " +
		"Name a service's request topic and its callers' reply topic to see both. It reads without a consumer group, so it takes nothing from anyone.",
	example: `  kafkarpc tail reports kafkarpc-cli.replies
  kafkarpc tail reports --json --count 10`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		count := fs.Int("count", 0, "stop after this many records (default: until interrupted)")
		dur := fs.Duration("for", 0, "stop after this long (default: until interrupted)")
		payload := fs.Bool("payload", false, "print each record's value too")
		window := fs.Duration("reorder", 250*time.Millisecond, "hold records this long to print them in timestamp order across topics")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("missing TOPIC")
			}
			if *count < 0 || *dur < 0 || *window < 0 {
				return usageErr("--count, --for and --reorder must not be negative")
			}
			t, err := openTransport(e.g)
			if err != nil {
				return err
			}
			defer t.Close()
			tl, ok := t.(transport.Tailer)
			if !ok {
				return usageErr("this transport cannot tail topics")
			}
			if *dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, *dur)
				defer cancel()
			}
			cons, err := tl.Tail(ctx, args...)
			if err != nil {
				return transportErr(fmt.Errorf("tailing %s: %w", strings.Join(args, ", "), err))
			}
			defer cons.Close()
			// On stderr in both modes: it says that records produced from
			// now on will be shown.
			fmt.Fprintf(e.stderr, "tailing %s (Ctrl-C to stop)\n", strings.Join(args, ", "))
			tp := &tailPrinter{e: e, seen: newRequestTimes(maxTracked), payload: *payload, window: *window, limit: *count}
			for !tp.full() {
				pctx, cancel := ctx, context.CancelFunc(func() {})
				if due, ok := tp.nextDue(); ok {
					pctx, cancel = context.WithDeadline(ctx, due)
				}
				msgs, err := cons.Poll(pctx)
				cancel()
				if ctx.Err() != nil {
					tp.flush(time.Time{}) // interrupted or --for elapsed: a normal end
					return nil
				}
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					tp.flush(time.Time{})
					return transportErr(err)
				}
				tp.add(msgs)
				tp.flush(time.Now())
			}
			return nil
		}
	},
}

// tailPrinter holds the records read for a short window before printing
// them in timestamp order: the records of several topics come in separate
// polls, and a reply read before its request would miss its latency.
type tailPrinter struct {
	e       *env
	seen    *requestTimes
	payload bool
	window  time.Duration
	limit   int // records to print; 0 means no limit
	printed int
	held    []heldRecord
}

type heldRecord struct {
	m       transport.Message
	arrived time.Time
}

func (tp *tailPrinter) full() bool { return tp.limit > 0 && tp.printed >= tp.limit }

func (tp *tailPrinter) add(msgs []transport.Message) {
	now := time.Now()
	for _, m := range msgs {
		tp.held = append(tp.held, heldRecord{m, now})
	}
	sort.SliceStable(tp.held, func(i, j int) bool { return before(&tp.held[i].m, &tp.held[j].m) })
}

// nextDue is when the first held record is to be printed.
func (tp *tailPrinter) nextDue() (time.Time, bool) {
	if len(tp.held) == 0 {
		return time.Time{}, false
	}
	return tp.held[0].arrived.Add(tp.window), true
}

// flush prints the held records, in order, that were held for the window
// by now; all of them when now is zero.
func (tp *tailPrinter) flush(now time.Time) {
	n := 0
	for ; n < len(tp.held) && !tp.full(); n++ {
		if !now.IsZero() && tp.held[n].arrived.Add(tp.window).After(now) {
			break
		}
		printRecord(tp.e, &tp.held[n].m, tp.seen, tp.payload)
		tp.printed++
	}
	tp.held = tp.held[n:]
}

// before orders records by timestamp, a request before the replies of the
// same millisecond.
func before(a, b *transport.Message) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	ka, _ := a.Header(rpc.HeaderKind)
	kb, _ := b.Header(rpc.HeaderKind)
	return ka == string(rpc.KindRequest) && kb != string(rpc.KindRequest)
}

// requestTimes remembers the timestamps of the last requests seen.
type requestTimes struct {
	at   map[string]time.Time
	ring []string
	next int
}

func newRequestTimes(n int) *requestTimes {
	return &requestTimes{at: make(map[string]time.Time), ring: make([]string, n)}
}

func (r *requestTimes) add(id string, t time.Time) {
	if _, ok := r.at[id]; ok {
		return // a resent copy: time from the first
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.at, old)
	}
	r.ring[r.next] = id
	r.at[id] = t
	r.next = (r.next + 1) % len(r.ring)
}

func printRecord(e *env, m *transport.Message, seen *requestTimes, payload bool) {
	env := envelopeOf(m)
	var latency time.Duration
	hasLatency := false
	switch env.Kind {
	case "request":
		seen.add(env.ID, m.Time)
	case "reply":
		if at, ok := seen.at[env.Correlation]; ok {
			latency, hasLatency = m.Time.Sub(at), true
		}
	}
	if e.g.json {
		out := map[string]any{"topic": m.Topic, "partition": m.Partition, "offset": m.Offset, "time": m.Time.UTC().Format(time.RFC3339Nano),
			"key": m.Key, "envelope": env}
		if hasLatency {
			out["latency_ms"] = ms(latency)
		}
		if payload {
			out["value"] = rawOrString(m.Value)
		}
		if len(m.Headers) > 0 {
			headers := make([][2]string, len(m.Headers))
			for i, h := range m.Headers {
				headers[i] = [2]string{h.Key, h.Value}
			}
			out["headers"] = headers
		}
		printJSON(e.stdout, out)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s[%d]@%d %-8s", m.Time.Local().Format("15:04:05.000"), m.Topic, m.Partition, m.Offset, env.Kind)
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	field("id", env.ID)
	field("correlation", env.Correlation)
	field("from", env.From)
	field("method", env.Method)
	if env.Kind == "legacy" {
		field("key", m.Key)
	}
	field("code", env.Code)
	if hasLatency {
		fmt.Fprintf(&b, " latency=%v", latency)
	}
	if env.Error != "" {
		fmt.Fprintf(&b, " error=%q", env.Error)
	}
	if payload {
		fmt.Fprintf(&b, " value=%s", oneLine(string(m.Value)))
	}
	fmt.Fprintln(e.stdout, b.String())
}
