package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

type break7Req struct {
	N     int `json:"n"`
	Sleep int `json:"sleep_ms"`
}

type break7Resp struct {
	N    int            `json:"n"`
	Echo string         `json:"echo,omitempty"`
	Tags map[string]int `json:"tags,omitempty"`
}

// TestBreak7PooledCallsUnderChurn runs many concurrent calls, typed and
// untyped, through one client with WithResend, some timing out (their
// replies come late), some canceled, while late replies and resent copies
// land: every call that succeeds gets its own answer, and every Reply and
// context a caller kept stays as it was once later calls reuse the pooled
// parts.
func TestBreak7PooledCallsUnderChurn(t *testing.T) {
	b := newBroker(t, memory.WithTopic("churn", 4))
	s, err := rpc.NewServer(b, rpc.WithName("srv"), rpc.WithConcurrency(8), quiet)
	require.NoError(t, err)
	rpc.Handle(s, "churn", func(ctx context.Context, r break7Req) (break7Resp, error) {
		if r.Sleep > 0 {
			select {
			case <-time.After(time.Duration(r.Sleep) * time.Millisecond):
			case <-ctx.Done():
			}
		}
		if r.N%11 == 0 {
			return break7Resp{}, rpc.Errorf(rpc.CodeInvalidArgument, "bad %d", r.N)
		}
		resp := break7Resp{N: r.N, Echo: fmt.Sprint(r.N)}
		if r.N%2 == 0 {
			resp.Tags = map[string]int{"n": r.N}
		}
		return resp, nil
	})
	serveAsync(t, s)
	c, err := rpc.NewClient(b, rpc.WithName("cli"), rpc.WithResend(15*time.Millisecond), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	type keptReply struct {
		n     int
		r     *rpc.Reply
		value string
	}
	var (
		mu   sync.Mutex
		kept []keptReply
		ok   atomic.Int64
	)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				n := g*1000 + i
				req := break7Req{N: n}
				ctx := context.Background()
				var cancel context.CancelFunc = func() {}
				switch i % 10 {
				case 3: // times out; its reply comes late
					req.Sleep = 40
					ctx, cancel = context.WithTimeout(ctx, 10*time.Millisecond)
				case 7: // canceled by the caller
					ctx, cancel = context.WithCancel(ctx)
					go func() { time.Sleep(time.Millisecond); cancel() }()
				}
				if i%2 == 0 {
					got, err := rpc.Call[break7Resp](ctx, c, "churn", req, rpc.WithTimeout(5*time.Second))
					cancel()
					switch {
					case n%11 == 0 && err != nil:
						var re *rpc.Error
						if errors.As(err, &re) && re.Code() == rpc.CodeInvalidArgument {
							require.Contains(t, re.Message(), fmt.Sprint(n))
						}
					case err == nil:
						require.Equal(t, n, got.N, "call %d got another call's answer", n)
						require.Equal(t, fmt.Sprint(n), got.Echo)
						if n%2 == 0 {
							require.Equal(t, map[string]int{"n": n}, got.Tags)
						} else {
							require.Nil(t, got.Tags, "call %d: tags leaked from another call", n)
						}
						ok.Add(1)
					}
					continue
				}
				r, err := c.Call(ctx, "churn", req, rpc.WithTimeout(5*time.Second))
				cancel()
				if err != nil || n%11 == 0 {
					continue
				}
				var resp break7Resp
				require.NoError(t, r.Decode(&resp))
				require.Equal(t, n, resp.N, "call %d got another call's reply", n)
				mu.Lock()
				kept = append(kept, keptReply{n, r, string(r.Value)})
				mu.Unlock()
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Greater(t, ok.Load(), int64(500))
	for _, k := range kept {
		require.Equal(t, k.value, string(k.r.Value), "a kept Reply changed")
		id, _ := k.r.Header(rpc.HeaderCorrelationID)
		require.NotEmpty(t, id)
	}
}
