package rpctest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Invoke calls route with req on a server whose routes register adds, and
// returns what rpc.Call[Resp] returns to a caller: the decoded reply, or
// the error, an *rpc.Error for a handler's error (its code, message and
// details as they travel, a panic as CodeInternal, a payload that does not
// decode into the handler's type as CodeInvalidArgument) or for a call
// that timed out (CodeDeadlineExceeded).
//
// route is "topic" or "topic/method", as registered. The call goes
// through the whole rpc path on an embedded broker (transport/memory) of
// its own, which Invoke makes and closes: the envelope, the JSON encoding
// both ways, the handler's context (rpc.RequestFrom, rpc.RequestID, the
// deadline; rpc.Progress notices reach an rpc.WithProgress in opts), the
// server's retries of an rpc.Retryable error. The server has the default
// options; to test a server built with options of its own (middleware,
// say), serve it with [Serve] on a memory broker and call it with an
// rpc.Client. Each Invoke has its own broker and server: no state is
// shared between calls, the dedup window included.
//
// A handler still running when its context ends (the call's deadline) is
// left to run on its own goroutine, as a server abandons a handler that
// ignores its context, and Invoke returns what the caller got: it does not
// wait for the handler, whose goroutine ends when it returns (a leak
// checker such as goleak sees it until then).
//
// opts are the call's (rpc.WithTimeout: default 30 s). The server's log
// lines, at Warn and above (a panicking handler's stack, say), go to
// tb.Output. Invoke fails tb with Fatal when the server cannot be set up,
// Serve fails (register added no route, say) or no route reads route's
// topic (a typo), instead of leaving the call to its timeout, so call it
// from the test's goroutine. Invoke may be called from parallel tests.
//
// A test of a handler, with no broker to set up:
//
//	func TestDouble(t *testing.T) {
//		register := func(s *rpc.Server) {
//			rpc.Handle(s, "double", func(ctx context.Context, n int) (int, error) {
//				if n < 0 {
//					return 0, rpc.Errorf(rpc.CodeInvalidArgument, "negative: %d", n)
//				}
//				return 2 * n, nil
//			})
//		}
//		if got, err := rpctest.Invoke[int](t, register, "double", 21); err != nil || got != 42 {
//			t.Fatalf("double 21: %d, %v", got, err)
//		}
//		if _, err := rpctest.Invoke[int](t, register, "double", -1); rpc.CodeOf(err) != rpc.CodeInvalidArgument {
//			t.Fatalf("double -1: %v, want invalid_argument", err)
//		}
//	}
func Invoke[Resp any](tb testing.TB, register func(s *rpc.Server), route string, req any, opts ...rpc.CallOption) (Resp, error) {
	tb.Helper()
	topic, method, _ := strings.Cut(route, "/")
	b, err := memory.New()
	if err != nil {
		tb.Fatalf("rpctest.Invoke: embedded broker: %v", err)
	}
	defer b.Close()
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	joined := make(chan []string, 1)
	s, err := rpc.NewServer(joinTold{Broker: b, joined: joined}, rpc.WithName(invokeGroup), rpc.WithGroup(invokeGroup),
		rpc.WithLogger(log), rpc.WithMiddleware(leaveAtDeadline))
	if err != nil {
		tb.Fatalf("rpctest.Invoke: %v", err)
	}
	register(s)
	c, err := rpc.NewClient(b, rpc.WithName("rpctest-invoke-client"), rpc.WithLogger(log))
	if err != nil {
		tb.Fatalf("rpctest.Invoke: %v", err)
	}
	defer c.Close()

	// The call ends when Serve does: a Serve that failed while the call
	// waited would leave it waiting for its whole timeout.
	callCtx, endCall := context.WithCancel(context.Background())
	defer endCall()
	serveCtx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- s.Serve(serveCtx)
		endCall()
	}()
	// A topic the server does not read (a typo in route) would leave the
	// call waiting for its whole timeout too: the server's topics are
	// known once it has joined its group.
	select {
	case topics := <-joined:
		if !slices.Contains(topics, topic) {
			stop()
			select {
			case <-served:
			case <-time.After(serveStopTimeout):
			}
			tb.Fatalf("rpctest.Invoke %s: no route of the server reads topic %q (its routes are on %s)", route, topic, strings.Join(topics, ", "))
		}
	case err := <-served: // before it joined: it failed (no routes, say)
		tb.Fatalf("rpctest.Invoke %s: Serve: %v", route, err)
	}
	if method != "" {
		opts = append([]rpc.CallOption{rpc.WithMethod(method)}, opts...)
	}
	resp, callErr := rpc.Call[Resp](callCtx, c, topic, req, opts...)

	stop()
	select {
	case err = <-served:
	case <-time.After(serveStopTimeout):
		tb.Fatalf("rpctest.Invoke: Serve did not return within %v of its cancel", serveStopTimeout)
	}
	if err != nil {
		tb.Fatalf("rpctest.Invoke %s: Serve: %v", route, err)
	}
	return resp, callErr
}

// invokeGroup is the name and group of Invoke's server.
const invokeGroup = "rpctest-invoke"

// joinTold is the embedded broker as Invoke's server sees it: it tells
// joined the topics of the server's group once the server has joined it.
// Every other method is the broker's.
type joinTold struct {
	*memory.Broker
	joined chan<- []string
}

func (j joinTold) Subscribe(ctx context.Context, sub transport.Subscription) (transport.Consumer, error) {
	cons, err := j.Broker.Subscribe(ctx, sub)
	if err == nil && sub.Group == invokeGroup {
		select {
		case j.joined <- slices.Clone(sub.Topics):
		default:
		}
	}
	return cons, err
}

// leaveAtDeadline is Invoke's middleware: the handler runs on a goroutine
// of its own, and one that ignores its context is left to it once the
// context ends, so that stopping Serve does not wait for it (for the drain
// timeout, 30 s, past Invoke's bound on the stop).
func leaveAtDeadline(next rpc.HandlerFunc) rpc.HandlerFunc {
	return func(ctx context.Context, r *rpc.Request) (any, error) {
		type result struct {
			res      any
			err      error
			returned bool
		}
		done := make(chan result, 1)
		go func() {
			var out result
			defer func() { done <- out }() // also when the handler calls runtime.Goexit
			out.res, out.err = next(ctx, r)
			out.returned = true
		}()
		select {
		case out := <-done:
			if !out.returned {
				return nil, rpc.Errorf(rpc.CodeInternal, "rpctest.Invoke: the handler exited without returning (runtime.Goexit: t.FailNow or require in a handler?)")
			}
			return out.res, out.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
