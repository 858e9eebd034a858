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
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("missing TOPIC")
			}
			if *count < 0 || *dur < 0 {
				return usageErr("--count and --for must not be negative")
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
			seen := newRequestTimes(maxTracked)
			n := 0
			for {
				msgs, err := cons.Poll(ctx)
				if ctx.Err() != nil {
					return nil // interrupted or --for elapsed: a normal end
				}
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return nil
					}
					return transportErr(err)
				}
				inTimeOrder(msgs)
				for i := range msgs {
					printRecord(e, &msgs[i], seen, *payload)
					if n++; *count > 0 && n >= *count {
						return nil
					}
				}
			}
		}
	},
}

// inTimeOrder sorts one poll's records, which come partition by partition,
// by timestamp, requests before the replies of the same millisecond: a reply
// is then printed after its request, and gets its latency.
func inTimeOrder(msgs []transport.Message) {
	sort.SliceStable(msgs, func(i, j int) bool {
		if ti, tj := msgs[i].Time, msgs[j].Time; !ti.Equal(tj) {
			return ti.Before(tj)
		}
		ki, _ := msgs[i].Header(rpc.HeaderKind)
		kj, _ := msgs[j].Header(rpc.HeaderKind)
		return ki == string(rpc.KindRequest) && kj != string(rpc.KindRequest)
	})
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
