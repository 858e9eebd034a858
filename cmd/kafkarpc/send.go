package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

var cmdSend = &command{
	name:  "send",
	short: "send a long job; --wait shows its progress notices and result",
	args:  "TOPIC [JSON|-]",
	summary: "Send a long job to TOPIC; its completion notice goes to the notice topic (--notice-topic), where the service's OnNotice handler reads it. " +
		"Prints the request id. With --wait, watches the notice topic (without joining its consumer group, so the service's handler still gets the notice) " +
		"and prints the job's progress notices as they come, then its result.",
	example: `  kafkarpc send reports '{"month":"2024-05"}' --notice-topic webapp.notices --wait --timeout 10m`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		var cf callFlags
		cf.register(fs, 5*time.Minute)
		wait := fs.Bool("wait", false, "wait for the completion notice, printing progress notices as they come")
		noticeTopic := fs.String("notice-topic", "", "topic the completion and progress notices go to (default NAME.notices)")
		return func(ctx context.Context, e *env, args []string) error {
			topic, payload, err := topicAndPayload(e, args)
			if err != nil {
				return err
			}
			opts, err := cf.options()
			if err != nil {
				return err
			}
			if *noticeTopic == "" {
				*noticeTopic = e.g.name + ".notices"
			}
			ctx, cancel := context.WithTimeout(ctx, cf.timeout)
			defer cancel()
			// The completion notice goes to the notice topic: the client
			// reads no reply topic, which need not exist.
			c, t, closeAll, err := newSender(e, cancel, rpc.WithNoticeTopic(*noticeTopic))
			if err != nil {
				return err
			}
			defer closeAll()

			var notices transport.Consumer
			if *wait {
				// Positioned before the request goes: no notice can be missed.
				tl, ok := t.(transport.Tailer)
				if !ok {
					return usageErr("--wait: this transport cannot tail topics")
				}
				if notices, err = tl.Tail(ctx, *noticeTopic); err != nil {
					return transportErr(fmt.Errorf("watching %s: %w", *noticeTopic, err))
				}
				defer notices.Close()
			}
			start := time.Now()
			id, err := c.Send(ctx, topic, payload, opts...)
			if err != nil {
				return transportErr(err)
			}
			if e.g.json {
				printJSON(e.stdout, map[string]any{"kind": "sent", "id": id, "topic": topic, "notice_topic": *noticeTopic})
			} else {
				fmt.Fprintf(e.stdout, "sent %s (notices on %s)\n", id, *noticeTopic)
			}
			if !*wait {
				return nil
			}
			return awaitNotice(ctx, e, notices, id, start, cf.timeout)
		}
	},
}

// awaitNotice reads the notice topic until the completion notice of id,
// printing its progress notices on the way.
func awaitNotice(ctx context.Context, e *env, notices transport.Consumer, id string, start time.Time, timeout time.Duration) error {
	for {
		msgs, err := notices.Poll(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			err := rpc.Errorf(rpc.CodeDeadlineExceeded, "no completion notice for %s within %v", id, timeout)
			return printOutcome(e, nil, err, time.Since(start))
		}
		if err != nil {
			return transportErr(err)
		}
		for i := range msgs {
			m := &msgs[i]
			env := envelopeOf(m)
			if env.Correlation != id {
				continue
			}
			switch env.Kind {
			case string(rpc.KindProgress):
				printProgress(e, id, m.Value)
			case string(rpc.KindReply):
				r := &rpc.Reply{Message: *m, ID: env.ID, CorrelationID: id, Kind: rpc.KindReply, From: env.From}
				if env.Code != "" || env.Error != "" {
					code, perr := rpc.ParseCode(env.Code)
					if perr != nil {
						code = rpc.CodeUnknown
					}
					rerr := rpc.Errorf(code, "%s", env.Error)
					if len(m.Value) > 0 && string(m.Value) != "null" && json.Valid(m.Value) {
						rerr = rerr.WithDetails(m.Value)
					}
					return printOutcome(e, nil, rerr, time.Since(start))
				}
				return printOutcome(e, r, nil, time.Since(start))
			}
		}
	}
}
