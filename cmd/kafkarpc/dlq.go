package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

var cmdDLQ = &command{
	name:  "dlq",
	short: "list, show and replay dead letters",
	args:  "list|show|replay TOPIC",
	summary: "Inspect and replay the dead letters of TOPIC (the records in TOPIC.dlq). list prints one line per dead letter; show prints them in full " +
		"(headers and payload); replay produces them again to their original topic with their original headers, minus the dlq-* ones, " +
		"and says how many it replayed. Select with --id and/or --offset (replay needs a selection or --all). " +
		"A replayed request keeps its rpc-id, so a server whose dedup window already answered it sends the stored reply again instead of " +
		"running it twice; --fresh-id gives each a new id to run it again on purpose. All records of a replay are produced in one request: " +
		"if one cannot be written (an unknown topic, say), none is. A TOPIC.dlq that does not exist is said to be missing and is not created, " +
		"on a server that creates topics on first use too.",
	example: `  kafkarpc dlq list reports
  kafkarpc dlq show reports --id 0190f3c1-5a2b-7c3d-8e4f-0123456789ab
  kafkarpc dlq replay reports --offset 10-19 --partition 0
  kafkarpc dlq replay reports --all --fresh-id`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		var sel dlqSelection
		fs.Var(&sel.ids, "id", "select the dead letter whose rpc-id is this (repeatable, or comma-separated)")
		fs.Var(&sel.offsets, "offset", "select dead letters by their offset in TOPIC.dlq: N or N-M (inclusive)")
		fs.IntVar(&sel.partition, "partition", -1, "with --offset, the partition of TOPIC.dlq (default all)")
		all := fs.Bool("all", false, "replay: every dead letter")
		to := fs.String("to", "", "replay: produce to this topic instead of each record's original one")
		fresh := fs.Bool("fresh-id", false, "replay: give each request a new rpc-id, so that it runs again even where it was answered")
		idle := fs.Duration("idle", time.Second, "the dead-letter topic is read until no record came for this long (raise it for a server slow to start a consumer)")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 {
				return usageErr("want list|show|replay TOPIC")
			}
			action, topic := args[0], strings.TrimSuffix(args[1], rpc.DeadLetterSuffix)
			switch action {
			case "list", "show", "replay":
			default:
				return usageErr("unknown dlq action %q: want list, show or replay", action)
			}
			if topic == "" {
				return usageErr("missing TOPIC")
			}
			if action == "replay" && !*all && !sel.any() {
				return usageErr("replay needs --id, --offset or --all")
			}
			if *idle <= 0 {
				return usageErr("--idle must be positive")
			}
			t, err := openTransport(e.g)
			if err != nil {
				return err
			}
			defer t.Close()
			dlqTopic := topic + rpc.DeadLetterSuffix
			// Reading a topic makes a server that auto-creates topics
			// create it: look first, and read only a topic that exists.
			exists, err := topicExists(ctx, t, dlqTopic)
			if err != nil {
				return transportErr(fmt.Errorf("checking for %s: %w", dlqTopic, err))
			}
			if !exists {
				return noDLQTopic(e, action, dlqTopic, sel.any())
			}
			letters, err := readAll(ctx, t, dlqTopic, *idle)
			if err != nil {
				return transportErr(fmt.Errorf("reading %s: %w", dlqTopic, err))
			}
			chosen := letters[:0:0]
			for _, m := range letters {
				if sel.match(&m) {
					chosen = append(chosen, m)
				}
			}
			if sel.any() && len(chosen) == 0 {
				return usageErr("no dead letter in %s matches the selection (%d in all)", dlqTopic, len(letters))
			}
			switch action {
			case "list":
				listLetters(e, dlqTopic, chosen)
			case "show":
				showLetters(e, chosen)
			case "replay":
				return replay(ctx, e, t, chosen, *to, *fresh)
			}
			return nil
		}
	},
}

// noDLQTopic answers a dlq action whose dead-letter topic does not exist:
// no dead letters, said so (no JSON line for list and show, as for an
// empty topic); a selection matches nothing, as in an empty topic.
func noDLQTopic(e *env, action, dlqTopic string, selected bool) error {
	if selected {
		return usageErr("no dead letter matches the selection: topic %s does not exist", dlqTopic)
	}
	switch {
	case action == "replay" && e.g.json:
		printJSON(e.stdout, map[string]any{"kind": "replayed", "count": 0})
	case action == "replay":
		fmt.Fprintf(e.stdout, "replayed 0 dead letters: topic %s does not exist\n", dlqTopic)
	case !e.g.json:
		fmt.Fprintf(e.stdout, "no dead letters: topic %s does not exist\n", dlqTopic)
	}
	return nil
}

// dlqSelection picks dead letters by id or offset; empty selects all.
type dlqSelection struct {
	ids       listFlag
	offsets   rangeFlag
	partition int
}

func (s *dlqSelection) any() bool { return len(s.ids) > 0 || s.offsets.set }

func (s *dlqSelection) match(m *transport.Message) bool {
	if len(s.ids) > 0 {
		id, _ := m.Header(rpc.HeaderID)
		found := false
		for _, want := range s.ids {
			found = found || want == id
		}
		if !found {
			return false
		}
	}
	if s.offsets.set {
		if s.partition >= 0 && m.Partition != int32(s.partition) {
			return false
		}
		if m.Offset < s.offsets.from || m.Offset > s.offsets.to {
			return false
		}
	}
	return true
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

type rangeFlag struct {
	from, to int64
	set      bool
}

func (r *rangeFlag) String() string { return "" }
func (r *rangeFlag) Set(s string) error {
	a, b, isRange := strings.Cut(s, "-")
	from, err1 := strconv.ParseInt(a, 10, 64)
	to := from
	var err2 error
	if isRange {
		to, err2 = strconv.ParseInt(b, 10, 64)
	}
	if err1 != nil || err2 != nil || from < 0 || to < from {
		return fmt.Errorf("offset %q: want N or N-M with 0 <= N <= M", s)
	}
	r.from, r.to, r.set = from, to, true
	return nil
}

// readAll reads topic from its earliest record until no record came for
// idle (an empty poll before then is not the end: a server may answer the
// first consume of a new member with nothing), in a consumer group of its own that commits nothing and is left at
// once: it takes no record from anyone.
func readAll(ctx context.Context, t transport.Transport, topic string, idle time.Duration) ([]transport.Message, error) {
	cons, err := t.Subscribe(ctx, transport.Subscription{
		Group:  "kafkarpc-cli-dlq-" + uuid.NewString(),
		Topics: []string{topic},
		Start:  transport.StartEarliest,
	})
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	var out []transport.Message
	quiet := time.Now().Add(idle) // the end, unless a record comes first
	for {
		wait := time.Until(quiet)
		if wait <= 0 {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		msgs, err := cons.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 {
			quiet = time.Now().Add(idle)
		}
		for _, m := range msgs { // copied: Poll's records may share a buffer
			m.Value = append([]byte(nil), m.Value...)
			m.Headers = append([]transport.Header(nil), m.Headers...)
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out, nil
}

// letter is what a dead letter's headers say.
type letter struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	ID        string `json:"id,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Method    string `json:"method,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Code      string `json:"code,omitempty"`
	Error     string `json:"error,omitempty"`
	Topic     string `json:"topic,omitempty"`
	From      string `json:"original,omitempty"` // original partition@offset
	Time      string `json:"time,omitempty"`
}

func letterOf(m *transport.Message) letter {
	h := func(k string) string { v, _ := m.Header(k); return v }
	l := letter{Partition: m.Partition, Offset: m.Offset, ID: h(rpc.HeaderID), Kind: h(rpc.HeaderKind), Method: h(rpc.HeaderMethod),
		Reason: h(rpc.HeaderDLQReason), Code: h(rpc.HeaderDLQCode), Error: h(rpc.HeaderDLQError), Topic: h(rpc.HeaderDLQTopic)}
	if p, o := h(rpc.HeaderDLQPartition), h(rpc.HeaderDLQOffset); p != "" || o != "" {
		l.From = p + "@" + o
	}
	if ms, err := strconv.ParseInt(h(rpc.HeaderDLQTime), 10, 64); err == nil {
		l.Time = time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	}
	return l
}

func listLetters(e *env, dlqTopic string, ms []transport.Message) {
	if !e.g.json && len(ms) == 0 {
		fmt.Fprintf(e.stdout, "no dead letters in %s\n", dlqTopic)
		return
	}
	for i := range ms {
		l := letterOf(&ms[i])
		if e.g.json {
			printJSON(e.stdout, l)
			continue
		}
		fmt.Fprintf(e.stdout, "%d@%d %s reason=%s code=%s id=%s from=%s@%s error=%q\n",
			l.Partition, l.Offset, l.Time, l.Reason, l.Code, l.ID, l.Topic, l.From, l.Error)
	}
	if !e.g.json {
		fmt.Fprintf(e.stdout, "%d dead letters in %s\n", len(ms), dlqTopic)
	}
}

func showLetters(e *env, ms []transport.Message) {
	for i := range ms {
		m := &ms[i]
		if e.g.json {
			headers := make([][2]string, len(m.Headers))
			for j, h := range m.Headers {
				headers[j] = [2]string{h.Key, h.Value}
			}
			printJSON(e.stdout, map[string]any{"dead_letter": letterOf(m), "key": m.Key, "headers": headers, "value": rawOrString(m.Value)})
			continue
		}
		fmt.Fprintf(e.stdout, "--- %s[%d]@%d key=%q\n", m.Topic, m.Partition, m.Offset, m.Key)
		for _, h := range m.Headers {
			fmt.Fprintf(e.stdout, "%s: %s\n", h.Key, h.Value)
		}
		fmt.Fprintf(e.stdout, "\n%s\n", pretty(m.Value))
	}
}

// replay produces ms again to their original topics (or to), without their
// dlq-* headers, in one Produce: all or none.
func replay(ctx context.Context, e *env, t transport.Transport, ms []transport.Message, to string, fresh bool) error {
	if len(ms) == 0 {
		if e.g.json {
			printJSON(e.stdout, map[string]any{"kind": "replayed", "count": 0})
		} else {
			fmt.Fprintln(e.stdout, "replayed 0 dead letters (none found)")
		}
		return nil
	}
	out := make([]transport.Message, 0, len(ms))
	perTopic := map[string]int{}
	for i := range ms {
		m := &ms[i]
		target := to
		if target == "" {
			target, _ = m.Header(rpc.HeaderDLQTopic)
		}
		if target == "" {
			return usageErr("%s[%d]@%d has no %s header, so its topic is unknown: give --to (nothing was replayed)",
				m.Topic, m.Partition, m.Offset, rpc.HeaderDLQTopic)
		}
		r := transport.Message{Topic: target, Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			if strings.HasPrefix(h.Key, "dlq-") {
				continue
			}
			if fresh && h.Key == rpc.HeaderID {
				id, err := uuid.NewV7()
				if err != nil {
					return err
				}
				h.Value = id.String()
			}
			r.Headers = append(r.Headers, h)
		}
		out = append(out, r)
		perTopic[target]++
	}
	if _, err := t.Produce(ctx, out...); err != nil {
		return transportErr(fmt.Errorf("replay refused, nothing was replayed: %w", err))
	}
	if e.g.json {
		printJSON(e.stdout, map[string]any{"kind": "replayed", "count": len(out), "topics": perTopic})
		return nil
	}
	topics := make([]string, 0, len(perTopic))
	for tp, n := range perTopic {
		topics = append(topics, fmt.Sprintf("%d to %s", n, tp))
	}
	sort.Strings(topics)
	fmt.Fprintf(e.stdout, "replayed %d dead letters (%s)\n", len(out), strings.Join(topics, ", "))
	return nil
}
