package upstash

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// headerCappingProxy is a reverse proxy in front of u that, as nginx does
// with its default proxy_buffer_size (one 4 KiB page), answers 502 when
// the server's response header block is over limit bytes.
func headerCappingProxy(t *testing.T, u string, limit int64, bad *atomic.Int64) string {
	t.Helper()
	target, err := url.Parse(u)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(target)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxResponseHeaderBytes = limit
	tr.MaxIdleConnsPerHost = 256
	p.Transport = tr
	p.ErrorLog = nil
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		// A request the client gave up on (a long poll it canceled) ends
		// here too: only answers over the cap count.
		if r.Context().Err() == nil && strings.Contains(err.Error(), "headers exceeded") {
			bad.Add(1)
		} else if r.Context().Err() == nil {
			t.Logf("proxy: %s %s: %v", r.Method, r.URL.Path, err)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	ps := httptest.NewServer(p)
	t.Cleanup(func() {
		ps.Close()
		tr.CloseIdleConnections()
	})
	return ps.URL
}

// A carried produce's answer travels in a response header
// (Kafka-Produced), and proxies cap the response header block: nginx's
// default proxy_buffer_size is 4 KiB, and an answer over it is a 502 to
// the client, the records written nonetheless. So a consume or fetch
// carries only what keeps that header small (maxProducedHeader); the rest
// is produced on its own. Here an rpc server with 64 workers, whose
// replies and markers ride on its consumes, and 64 callers go through a
// proxy with a 4 KiB cap: every call is answered and no exchange is
// refused by the proxy.
func TestCarriedAnswerFitsBehindAProxy(t *testing.T) {
	s := startServer(t, serverConfig{serve: true})
	var bad atomic.Int64
	u := headerCappingProxy(t, s.URL, 4096, &bad)
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))
	srv, err := rpc.NewServer(newTestTransport(t, u), rpc.WithName("proxied-srv"), quiet, rpc.WithConcurrency(64))
	require.NoError(t, err)
	rpc.Handle(srv, "echo", func(_ context.Context, r echoReq) (echoReq, error) { return r, nil })
	stop := rpctest.Serve(t, srv)
	defer func() { require.NoError(t, stop()) }()
	var clog logBuffer // the client's debug log, shown when calls fail
	cli, err := rpc.NewClient(newTestTransport(t, u, WithLogger(clog.logger())), rpc.WithName("proxied-cli"), rpc.WithLogger(clog.logger()))
	require.NoError(t, err)
	defer cli.Close()

	const callers, each = 64, 30
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		first  atomic.Value
	)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
				req := echoReq{ID: g*each + i, Report: "behind a proxy"}
				out, err := rpc.Call[echoReq](cctx, cli, "echo", req)
				ccancel()
				if err == nil && out != req {
					err = assert.AnError
				}
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls, %d failed, %d exchanges refused by the proxy (first failure: %v)", callers*each, failed.Load(), bad.Load(), first.Load())
	assert.Zero(t, bad.Load(), "exchanges the proxy refused (response header over 4 KiB)")
	// Go's HTTP/1 server in front of this proxy closes a request body
	// over about 4 KiB when the proxy's handler answers before reading it
	// whole, and the proxy then cuts the consume answer off: the records
	// of such an answer come again with the rpc server's next consume
	// (Kafka-Consume-Ack). Before that, about one run in forty under the
	// -race suite's load had 15-63 calls time out here.
	if n := failed.Load(); n > 0 {
		l := clog.String()
		if len(l) > 20000 {
			l = l[len(l)-20000:]
		}
		t.Errorf("%d calls failed behind the proxy; client log (end):\n%s", n, l)
	}
}

// CarryFits takes as many records as keep their Kafka-Produced answer
// under the default bound, by an estimate that is not under what the
// server writes; with WithMaxCarriedAnswer(0) only the record count bounds
// it.
func TestCarryFitsBoundsTheAnswer(t *testing.T) {
	tr := newTestTransport(t, "http://127.0.0.1:9") // nothing is sent
	unbounded := newTestTransport(t, "http://127.0.0.1:9", WithMaxCarriedAnswer(0))
	msgs := make([]transport.Message, 200)
	for i := range msgs {
		msgs[i] = transport.Message{Topic: "orders.replies", Value: []byte("{}")}
	}
	var c consumer
	c.t = tr
	fit := 0
	for fit < len(msgs) && c.CarryFits(msgs[:fit+1]) {
		fit++
	}
	// "orders.replies" is 14 bytes: 92 a record, about 33 in 3 KiB.
	assert.InDelta(t, 33, fit, 2, "records that fit in the default bound")
	assert.LessOrEqual(t, producedHeaderSize(msgs[:fit]), DefaultMaxCarriedAnswer)
	// What the server really answers for them is within the estimate.
	for i := range msgs[:fit] {
		msgs[i].Partition, msgs[i].Offset, msgs[i].Time = 7, 1<<40, time.UnixMilli(1_700_000_000_000)
	}
	var answer []byte
	answer = append(answer, '[')
	for i := range msgs[:fit] {
		if i > 0 {
			answer = append(answer, ',')
		}
		answer = restwire.AppendMetadata(answer, &msgs[i])
	}
	answer = append(answer, ']')
	assert.LessOrEqual(t, len(answer), producedHeaderSize(msgs[:fit]), "the estimate is under what the server writes")
	c.t = unbounded
	assert.True(t, c.CarryFits(msgs), "WithMaxCarriedAnswer(0): only the record count bounds it")
}
