package rpctest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
)

// A15 (a first-time user's review): rpctest had no way to run a handler
// without setting up a broker, a server, Serve and a client. Invoke is
// that, in one line; this is its doc example, run.
func TestA15InvokeDocExample(t *testing.T) {
	register := func(s *rpc.Server) {
		rpc.Handle(s, "double", func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				return 0, rpc.Errorf(rpc.CodeInvalidArgument, "negative: %d", n)
			}
			return 2 * n, nil
		})
	}
	if got, err := rpctest.Invoke[int](t, register, "double", 21); err != nil || got != 42 {
		t.Fatalf("double 21: %d, %v", got, err)
	}
	if _, err := rpctest.Invoke[int](t, register, "double", -1); rpc.CodeOf(err) != rpc.CodeInvalidArgument {
		t.Fatalf("double -1: %v, want invalid_argument", err)
	}
}

type a15Query struct {
	Month string `json:"month"`
}

type a15Report struct {
	Month string `json:"month"`
	ID    string `json:"id"`
	From  string `json:"from"`
}

// A15: what Invoke returns is what a caller gets: routes by method, the
// handler's context, progress notices, error details, a panic, a payload
// that does not decode, and a raw reply with json.RawMessage.
func TestA15InvokeIsWhatTheCallerGets(t *testing.T) {
	var progress []string
	register := func(s *rpc.Server) {
		rpc.Handle(s, "reports/monthly", func(ctx context.Context, q a15Query) (a15Report, error) {
			req, ok := rpc.RequestFrom(ctx)
			if !ok {
				return a15Report{}, errors.New("no request in the handler's context")
			}
			if _, ok := ctx.Deadline(); !ok {
				return a15Report{}, errors.New("no deadline in the handler's context")
			}
			if err := rpc.Progress(ctx, map[string]int{"rows": 1}); err != nil {
				return a15Report{}, err
			}
			switch q.Month {
			case "locked":
				return a15Report{}, rpc.Errorf(rpc.CodeFailedPrecondition, "month %s is locked", q.Month).WithDetails(json.RawMessage(`{"by":"ann"}`))
			case "boom":
				panic("boom")
			}
			return a15Report{Month: q.Month, ID: rpc.RequestID(ctx), From: req.From}, nil
		})
		s.HandleFunc("reports", func(ctx context.Context, r *rpc.Request) (any, error) {
			return json.RawMessage(`{"default":true}`), nil
		})
	}

	start := time.Now()
	got, err := rpctest.Invoke[a15Report](t, register, "reports/monthly", a15Query{Month: "2026-11"},
		rpc.WithProgress(func(r *rpc.Reply) { progress = append(progress, string(r.Value)) }))
	require.NoError(t, err)
	assert.Equal(t, "2026-11", got.Month)
	assert.NotEmpty(t, got.ID, "rpc.RequestID in the handler")
	assert.NotEmpty(t, got.From, "the caller's name")
	assert.Equal(t, []string{`{"rows":1}`}, progress)
	assert.Less(t, time.Since(start), 2*time.Second, "an Invoke is quick")

	_, err = rpctest.Invoke[a15Report](t, register, "reports/monthly", a15Query{Month: "locked"})
	var re *rpc.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, rpc.CodeFailedPrecondition, re.Code())
	assert.Equal(t, "month locked is locked", re.Message())
	assert.JSONEq(t, `{"by":"ann"}`, string(re.Details()))

	_, err = rpctest.Invoke[a15Report](t, register, "reports/monthly", a15Query{Month: "boom"})
	assert.Equal(t, rpc.CodeInternal, rpc.CodeOf(err), "%v", err)

	_, err = rpctest.Invoke[a15Report](t, register, "reports/monthly", "not an object")
	assert.Equal(t, rpc.CodeInvalidArgument, rpc.CodeOf(err), "%v", err)

	raw, err := rpctest.Invoke[json.RawMessage](t, register, "reports", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"default":true}`, string(raw))

	// A retryable error is retried by the server (3 attempts by default).
	runs := 0
	got2, err := rpctest.Invoke[int](t, func(s *rpc.Server) {
		rpc.Handle(s, "flaky", func(ctx context.Context, n int) (int, error) {
			if runs++; runs < 3 {
				return 0, rpc.Retryable(errors.New("busy"))
			}
			return n, nil
		})
	}, "flaky", 5)
	require.NoError(t, err)
	assert.Equal(t, 5, got2)
	assert.Equal(t, 3, runs)

	raw, err = rpctest.Invoke[json.RawMessage](t, register, "reports/nosuch", a15Query{})
	require.NoError(t, err)
	assert.JSONEq(t, `{"default":true}`, string(raw), "a method without a route of its own goes to the topic's")
}

// fatalTB records a Fatal and ends the goroutine, as testing does.
type fatalTB struct {
	testing.TB
	mu    sync.Mutex
	fatal []string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = append(f.fatal, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

// A15: a server that cannot serve (register added no route) fails the test
// at once, instead of leaving the call to wait for its timeout.
func TestA15InvokeWithoutRoutesFailsAtOnce(t *testing.T) {
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		rpctest.Invoke[int](ftb, func(*rpc.Server) {}, "double", 1)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Invoke without routes still running after 10 s")
	}
	assert.Less(t, time.Since(start), 2*time.Second)
	require.Len(t, ftb.fatal, 1)
	assert.True(t, strings.Contains(ftb.fatal[0], "no routes"), ftb.fatal[0])
}
