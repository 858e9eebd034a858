package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// callFlags are the options of the commands that send a request.
type callFlags struct {
	method  string
	key     string
	timeout time.Duration
	headers headerFlag
}

func (cf *callFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	fs.StringVar(&cf.method, "method", "", "rpc-method: the sub-route within the topic (served by TOPIC/METHOD)")
	fs.StringVar(&cf.key, "key", "", "record key, which picks the partition (default none: spread)")
	fs.DurationVar(&cf.timeout, "timeout", timeout, "how long the reply may take; the deadline travels with the request")
	fs.Var(&cf.headers, "header", "add a record header key=value (repeatable); rpc-* are reserved")
}

func (cf *callFlags) options() ([]rpc.CallOption, error) {
	if strings.Contains(cf.method, "/") {
		return nil, usageErr("--method %q: a method cannot contain '/'", cf.method)
	}
	if cf.timeout <= 0 {
		return nil, usageErr("--timeout %v: must be positive", cf.timeout)
	}
	opts := []rpc.CallOption{rpc.WithTimeout(cf.timeout)}
	if cf.method != "" {
		opts = append(opts, rpc.WithMethod(cf.method))
	}
	if cf.key != "" {
		opts = append(opts, rpc.WithKey(cf.key))
	}
	for _, h := range cf.headers {
		opts = append(opts, rpc.WithHeader(h.Key, h.Value))
	}
	return opts, nil
}

// topicAndPayload checks the positional arguments TOPIC [JSON|-].
func topicAndPayload(e *env, args []string) (string, json.RawMessage, error) {
	if len(args) == 0 || args[0] == "" {
		return "", nil, usageErr("missing TOPIC")
	}
	if len(args) > 2 {
		return "", nil, usageErr("too many arguments: want TOPIC [JSON|-], got %d (quote the JSON)", len(args))
	}
	payload, err := readPayload(e, args[1:])
	return args[0], payload, err
}

var cmdCall = &command{
	name:    "call",
	short:   "send a request, print the reply or the error code and message",
	args:    "TOPIC [JSON|-]",
	summary: "Send a request to TOPIC and print the reply, or the error code and message. '-' reads the JSON from stdin; no JSON sends null. Progress notices are printed as they come.",
	example: `  kafkarpc call --url http://127.0.0.1:8080 reports '{"month":"2024-05"}' --method monthly --timeout 10s
  echo '{"id":7}' | kafkarpc call orders - --header traceparent=00-... --json`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		var cf callFlags
		cf.register(fs, 30*time.Second)
		return func(ctx context.Context, e *env, args []string) error {
			topic, payload, err := topicAndPayload(e, args)
			if err != nil {
				return err
			}
			opts, err := cf.options()
			if err != nil {
				return err
			}
			c, _, closeAll, err := newClient(e)
			if err != nil {
				return err
			}
			defer closeAll()
			opts = append(opts, rpc.WithProgress(func(r *rpc.Reply) { printProgress(e, r.CorrelationID, r.Value) }))
			start := time.Now()
			r, err := c.Call(ctx, topic, payload, opts...)
			return printOutcome(e, r, err, time.Since(start))
		}
	},
}

// printProgress prints one progress notice: to stderr as text, to stdout
// as a JSON line.
func printProgress(e *env, id string, value []byte) {
	if e.g.json {
		printJSON(e.stdout, map[string]any{"kind": "progress", "id": id, "progress": rawOrString(value)})
		return
	}
	fmt.Fprintf(e.stderr, "progress: %s\n", oneLine(string(value)))
}

// printOutcome prints a reply or an error reply and returns the error that
// gives the exit code.
func printOutcome(e *env, r *rpc.Reply, err error, took time.Duration) error {
	if err == nil {
		if e.g.json {
			printJSON(e.stdout, map[string]any{"kind": "reply", "ok": true, "id": r.CorrelationID, "from": r.From,
				"latency_ms": ms(took), "reply": rawOrString(r.Value)})
			return nil
		}
		fmt.Fprintln(e.stdout, pretty(r.Value))
		return nil
	}
	var re *rpc.Error
	if isTransportErr(err) || !errors.As(err, &re) {
		return transportErr(err)
	}
	if e.g.json {
		msg := re.Message()
		if errors.Is(err, rpc.ErrTimeout) && re.Unwrap() != rpc.ErrTimeout { // ours, not the server's
			msg = fmt.Sprintf("no reply within %v", took.Round(time.Millisecond))
		}
		out := map[string]any{"kind": "error", "ok": false, "code": re.Code().String(), "message": msg, "latency_ms": ms(took)}
		if d := re.Details(); d != nil {
			out["details"] = d
		}
		printJSON(e.stdout, out)
		return silent{exitReply}
	}
	msg := re.Message()
	if errors.Is(err, rpc.ErrTimeout) && re.Unwrap() != rpc.ErrTimeout { // ours, not the server's
		msg = fmt.Sprintf("no reply within %v (is a server serving the topic?)", took.Round(time.Millisecond))
	}
	fmt.Fprintf(e.stdout, "error %s: %s\n", re.Code(), msg)
	if d := re.Details(); d != nil {
		fmt.Fprintln(e.stdout, pretty(d))
	}
	return silent{exitReply}
}

var cmdNotify = &command{
	name:    "notify",
	short:   "send a notification (no reply)",
	args:    "TOPIC [JSON|-]",
	summary: "Send a notification to TOPIC: a request that asks for no reply. Prints what was sent. Needs only TOPIC on the server (no reply topic).",
	example: `  kafkarpc notify cache '{"evict":"user:7"}' --key users`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		var cf callFlags
		cf.register(fs, 30*time.Second)
		return func(ctx context.Context, e *env, args []string) error {
			topic, payload, err := topicAndPayload(e, args)
			if err != nil {
				return err
			}
			opts, err := cf.options()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, cf.timeout)
			defer cancel()
			// A notification gets no reply: the client reads no reply
			// topic, which need not exist.
			c, _, closeAll, err := newSender(e, cancel)
			if err != nil {
				return err
			}
			defer closeAll()
			if err := c.Notify(ctx, topic, payload, opts...); err != nil {
				return transportErr(err)
			}
			if e.g.json {
				printJSON(e.stdout, map[string]any{"kind": "notify", "ok": true, "topic": topic})
			} else {
				fmt.Fprintf(e.stdout, "notified %s\n", topic)
			}
			return nil
		}
	},
}
