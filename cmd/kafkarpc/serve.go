package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// exitTempFail is the exit status (sysexits.h EX_TEMPFAIL) by which an
// --exec command says its failure is transient: the request is retried
// and, after the last attempt, dead-lettered.
const exitTempFail = 75

// maxExecOutput caps what is kept of an --exec command's stdout (the
// reply) and stderr (the error message).
const (
	maxExecOutput = 1 << 20
	maxExecStderr = 4 << 10
)

var cmdServe = &command{
	name:  "serve",
	short: "answer requests with --echo or --exec CMD",
	args:  "TOPIC...",
	summary: "Answer the requests on TOPICs until interrupted (SIGINT/SIGTERM drain the requests in flight). " +
		"--echo replies with the request's payload; --exec CMD runs CMD with sh -c for each request, the payload on its stdin " +
		"and RPC_TOPIC, RPC_METHOD, RPC_ID, RPC_FROM, RPC_KEY in its environment, and replies with its stdout " +
		"(as JSON when it is JSON, else as a JSON string). A stderr line \"progress: VALUE\" is sent to the caller as a progress notice at once. A command that exits non-zero is an error reply whose message is its " +
		"last line of stderr; a line \"CODE: message\" with an rpc code name (not_found, invalid_argument, ...) sets the code, " +
		"else it is internal. Exit status 75 (EX_TEMPFAIL) is transient: the request is retried (--retries) and then dead-lettered to TOPIC.dlq. " +
		"Prints a line per request handled.",
	example: `  kafkarpc serve reports --echo
  kafkarpc serve reports --exec 'jq "{rows: (.n * 2)}"' --concurrency 4 --group reports-workers`,
	flags: func(fs *flag.FlagSet, g *globals) func(context.Context, *env, []string) error {
		echo := fs.Bool("echo", false, "reply with the request's payload")
		command := fs.String("exec", "", "shell command answering each request (payload on stdin, reply on stdout)")
		group := fs.String("group", "", "consumer group; instances of one group share the requests (default NAME)")
		instance := fs.String("instance", "", "stable instance id within the group (default: $KAFKA_INSTANCE, suffixed .NAME when --group is not NAME; else a fresh one)")
		concurrency := fs.Int("concurrency", 4, "requests handled at once")
		retries := fs.Int("retries", 3, "attempts for a request whose command exits 75, before it is dead-lettered")
		drain := fs.Duration("drain-timeout", 30*time.Second, "at shutdown, how long requests in flight may finish")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("missing TOPIC")
			}
			if *echo == (*command != "") {
				return usageErr("give exactly one of --echo and --exec CMD")
			}
			if *concurrency < 1 || *retries < 1 {
				return usageErr("--concurrency and --retries must be at least 1")
			}
			t, err := openTransport(e.g)
			if err != nil {
				return err
			}
			defer t.Close()
			opts := []rpc.ServerOption{rpc.WithName(e.g.name), rpc.WithLogger(e.log), rpc.WithConcurrency(*concurrency),
				rpc.WithRetry(*retries, 100*time.Millisecond), rpc.WithDrainTimeout(*drain)}
			if *group != "" {
				opts = append(opts, rpc.WithGroup(*group))
			}
			if *instance != "" {
				opts = append(opts, rpc.WithInstance(*instance))
			}
			s, err := rpc.NewServer(t, opts...)
			if err != nil {
				return usageErr("%v", err)
			}
			h := echoHandler
			if *command != "" {
				h = execHandler(*command)
			}
			for _, topic := range args {
				s.HandleFunc(topic, logged(e, h))
			}
			if !e.g.json {
				grp := *group
				if grp == "" {
					grp = e.g.name
				}
				fmt.Fprintf(e.stderr, "serving %s as group %s (Ctrl-C to stop)\n", strings.Join(args, ", "), grp)
			}
			if err := s.Serve(ctx); err != nil {
				return transportErr(err)
			}
			return nil
		}
	},
}

func echoHandler(_ context.Context, r *rpc.Request) (any, error) {
	return rawOrString(bytes.Clone(r.Value)), nil
}

// execHandler runs command for each request.
func execHandler(command string) rpc.HandlerFunc {
	return func(ctx context.Context, r *rpc.Request) (any, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		killTree(cmd)
		cmd.Stdin = bytes.NewReader(r.Value)
		cmd.Env = append(os.Environ(), "RPC_TOPIC="+r.Topic, "RPC_METHOD="+r.Method, "RPC_ID="+r.ID, "RPC_FROM="+r.From, "RPC_KEY="+r.Key)
		stdout := &capped{max: maxExecOutput}
		stderr := &capped{max: maxExecStderr, keepTail: true}
		cmd.Stdout = stdout
		lw := &lineWriter{fn: func(line []byte) {
			if v, ok := bytes.CutPrefix(line, []byte(progressPrefix)); ok {
				_ = rpc.Progress(ctx, rawOrString(bytes.TrimSpace(v)))
				return
			}
			stderr.Write(line)
		}}
		cmd.Stderr = lw
		cmd.WaitDelay = time.Second // a child holding the pipes open cannot hang the handler
		err := cmd.Run()
		lw.flush()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			var xe *exec.ExitError
			if !errors.As(err, &xe) {
				return nil, rpc.Errorf(rpc.CodeInternal, "running the command: %v", err)
			}
			rerr := execError(xe.ExitCode(), stderr.String())
			if xe.ExitCode() == exitTempFail {
				return nil, rpc.Retryable(rerr)
			}
			return nil, rerr
		}
		if stdout.truncated {
			return nil, rpc.Errorf(rpc.CodeResourceExhausted, "the command wrote more than %d bytes", maxExecOutput)
		}
		return rawOrString(bytes.TrimSpace(stdout.buf.Bytes())), nil
	}
}

// execError turns a failed command's exit status and stderr into an
// *rpc.Error: its last stderr line, "CODE: message" setting the code.
func execError(status int, stderr string) *rpc.Error {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if name, msg, ok := strings.Cut(last, ":"); ok {
		if code, err := rpc.ParseCode(strings.TrimSpace(name)); err == nil {
			return rpc.Errorf(code, "%s", strings.TrimSpace(msg))
		}
	}
	if status == exitTempFail {
		if last == "" {
			last = "temporary failure"
		}
		return rpc.Errorf(rpc.CodeUnavailable, "%s", last)
	}
	if last == "" {
		return rpc.Errorf(rpc.CodeInternal, "the command exited with status %d", status)
	}
	return rpc.Errorf(rpc.CodeInternal, "%s (exit status %d)", last, status)
}

// logged prints a line for each request h handles.
func logged(e *env, h rpc.HandlerFunc) rpc.HandlerFunc {
	return func(ctx context.Context, r *rpc.Request) (any, error) {
		start := time.Now()
		res, err := h(ctx, r)
		took := time.Since(start)
		code := "ok"
		if err != nil {
			code = rpc.CodeOf(err).String()
		}
		if e.g.json {
			out := map[string]any{"kind": "handled", "topic": r.Topic, "id": r.ID, "method": r.Method, "from": r.From,
				"code": code, "took_ms": ms(took)}
			if err != nil {
				out["error"] = err.Error()
			}
			printJSON(e.stdout, out)
		} else {
			line := fmt.Sprintf("%s %s id=%s from=%s", time.Now().Format("15:04:05.000"), r.Topic, r.ID, r.From)
			if r.Method != "" {
				line += " method=" + r.Method
			}
			line += fmt.Sprintf(" %s in %v", code, took.Round(time.Microsecond))
			if err != nil {
				line += ": " + oneLine(err.Error())
			}
			fmt.Fprintln(e.stdout, line)
		}
		return res, err
	}
}

// progressPrefix starts the stderr lines of an --exec command that are
// progress notices.
const progressPrefix = "progress:"

// lineWriter calls fn with each complete line written to it (newline
// included) and, at Close-less end, nothing more: a last line without a
// newline is passed on by flush.
type lineWriter struct {
	buf []byte
	fn  func(line []byte)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxExecStderr { // a very long line: pass it on in pieces
		w.fn(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

// flush passes on a last line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.fn(w.buf)
		w.buf = nil
	}
}

// capped is a writer keeping at most max bytes: the first ones, or with
// keepTail the last ones.
type capped struct {
	buf       bytes.Buffer
	max       int
	keepTail  bool
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if c.keepTail {
		c.buf.Write(p)
		if over := c.buf.Len() - c.max; over > 0 {
			rest := bytes.Clone(c.buf.Bytes()[over:])
			c.buf.Reset()
			c.buf.Write(rest)
		}
		return n, nil
	}
	if room := c.max - c.buf.Len(); len(p) > room {
		p = p[:max(room, 0)]
		c.truncated = true
	}
	c.buf.Write(p)
	return n, nil
}

func (c *capped) String() string { return c.buf.String() }
