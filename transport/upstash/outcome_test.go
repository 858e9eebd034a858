package upstash

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Issue 15, finding 11: a server that appends a produce and answers []
// leaves the client unable to tell whether its request was written. The
// transport says so (transport.ErrOutcomeUnknown, not retried: a retry
// could write it twice), and rpc.Call waits for the reply instead of
// failing: here the request was written, so the reply comes.
func TestProduceOutcomeUnknownCallStillAnswered(t *testing.T) {
	srv := startServer(t, serverConfig{})
	backend, err := url.Parse(srv.URL)
	require.NoError(t, err)
	var blanked atomic.Int64
	// In front of the real server: a produce to "svc" is appended there,
	// and its answer replaced by [].
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out, err := http.NewRequestWithContext(r.Context(), r.Method, backend.String()+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if r.URL.Path == "/produce" && bytes.Contains(body, []byte(`"topic":"svc"`)) {
			blanked.Add(1)
			answer = []byte(`[]`)
		}
		for k, v := range resp.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(front.Close)

	direct, err := New(WithURL(srv.URL), fastBackoff)
	require.NoError(t, err)
	t.Cleanup(func() { _ = direct.Close() })
	s, err := rpc.NewServer(direct, rpc.WithName("svc-srv"), rpc.WithLogger(discard))
	require.NoError(t, err)
	rpc.Handle(s, "svc", func(ctx context.Context, n int) (int, error) { return n * 2, nil })
	rpctest.Serve(t, s)

	tr, err := New(WithURL(front.URL), fastBackoff)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	_, err = tr.Produce(t.Context(), transport.Message{Topic: "svc", Value: []byte(`1`)})
	require.ErrorIs(t, err, transport.ErrOutcomeUnknown)
	require.Equal(t, int64(1), blanked.Load(), "not retried: a retry could write it twice")

	c, err := rpc.NewClient(tr, rpc.WithName("svc-cli"), rpc.WithLogger(discard))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n, err := rpc.Call[int](ctx, c, "svc", 21)
	require.NoError(t, err, "the request was written: its reply answers the call")
	require.Equal(t, 42, n)
}
