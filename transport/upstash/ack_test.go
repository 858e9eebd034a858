package upstash

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// cuttingProxy is an HTTP proxy in front of u that cuts off consume
// answers on their way: it reads the server's whole answer and, when
// cut says so for an answer with records, sends its headers and half its
// body, then drops the connection, as a proxy or network that fails in the
// middle of an answer does. The REST server has then moved the instance
// past those records. cut is called with the body of each consume answer
// with records, from the proxy's handlers (concurrently).
func cuttingProxy(t *testing.T, u string, cut func(body []byte) bool) (url string, cuts *atomic.Int64) {
	t.Helper()
	cuts = new(atomic.Int64)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, u+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		req.ContentLength = r.ContentLength
		resp, err := hc.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(resp.StatusCode)
		records := strings.HasPrefix(r.URL.Path, "/consume/") && resp.StatusCode == http.StatusOK &&
			bytes.HasPrefix(body, []byte("[{"))
		if records && cut(body) {
			cuts.Add(1)
			_, _ = w.Write(body[:len(body)/2])
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the connection is dropped, the answer cut
		}
		_, _ = w.Write(body)
	}))
	ps.Config.ErrorLog = nil
	t.Cleanup(func() {
		ps.Close()
		hc.CloseIdleConnections()
	})
	return ps.URL, cuts
}

// A consume answer cut off on its way (the connection dropped in the
// middle of its body) is retried by the transport, or fails its Poll, and
// the retry or the next Poll gets the same records again: the consumer
// acknowledges each answer it read whole (Kafka-Consume-Ack), and the
// server sends an unacknowledged one again.
// Before, the server had moved the instance past them and they were lost
// for this consumer, and for the group once a later commit passed them.
func TestCutConsumeAnswerIsSentAgain(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(2)}})
	var n atomic.Int64
	u, cuts := cuttingProxy(t, s.URL, func([]byte) bool { return n.Add(1) <= 3 }) // the first three
	direct := newTestTransport(t, s.URL)
	tr := newTestTransport(t, u)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"jobs"}, Start: transport.StartEarliest})
	require.NoError(t, err)
	defer c.Close()
	const total = 30
	var got []transport.Message
	seen := map[string]int{}
	pollErrs := 0
	for i := range total {
		_, err := direct.Produce(ctx, transport.Message{Topic: "jobs", Value: fmt.Appendf(nil, "job-%d", i)})
		require.NoError(t, err)
		if i%10 != 9 {
			continue
		}
		// Ten records at a time: each cut answer is followed by others.
		for len(seen) < i+1 {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			msgs, err := c.Poll(pctx)
			pcancel()
			if err != nil {
				require.NotErrorIs(t, err, context.Canceled)
				require.NoError(t, ctx.Err(), "records seen: %d of %d, poll errors %d", len(seen), i+1, pollErrs)
				pollErrs++
				continue
			}
			for _, m := range msgs {
				seen[string(m.Value)]++
			}
			got = append(got, msgs...)
		}
	}
	require.NoError(t, c.Commit(ctx, got...))
	t.Logf("%d answers cut, %d polls failed, %d records delivered for %d produced", cuts.Load(), pollErrs, len(got), total)
	assert.Equal(t, int64(3), cuts.Load(), "answers the proxy cut")
	for i := range total {
		assert.Equal(t, 1, seen[fmt.Sprintf("job-%d", i)], "job-%d delivered once", i)
	}
	// Per partition, the records came in order with no gap.
	next := map[int32]int64{}
	for _, m := range got {
		if off, ok := next[m.Partition]; ok {
			assert.Equal(t, off, m.Offset, "partition %d: the record after offset %d", m.Partition, off-1)
		}
		next[m.Partition] = m.Offset + 1
	}
}

// An rpc server whose consume answers are cut off on their way (one in
// five, through a proxy) still answers every call, each handler running
// once, without the client resending anything: the records of a cut
// answer come again with the server's next consume. Before, those calls
// waited until they timed out.
func TestRPCServerBehindCuttingProxyLosesNoRequest(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(3)}})
	var n atomic.Int64
	u, cuts := cuttingProxy(t, s.URL, func([]byte) bool { return n.Add(1)%5 == 0 })
	srv, err := rpc.NewServer(newTestTransport(t, u), rpc.WithName("cut-srv"), rpc.WithLogger(discard), rpc.WithConcurrency(8))
	require.NoError(t, err)
	var runs handlerRuns
	rpc.Handle(srv, "echo", func(ctx context.Context, r echoReq) (echoReq, error) {
		runs.ran(ctx)
		return r, nil
	})
	stop := rpctest.Serve(t, srv)
	defer func() { require.NoError(t, stop()) }()
	cli, err := rpc.NewClient(newTestTransport(t, s.URL), rpc.WithName("cut-cli"), rpc.WithLogger(discard))
	require.NoError(t, err)
	defer cli.Close()

	const callers, each = 16, 25
	failed := callEcho(t, cli, callers, each, 15*time.Second, "cut", nil)
	total, twice := runs.counts()
	t.Logf("%d calls, %d failed, %d consume answers cut, %d handler runs (%d requests run twice)", callers*each, failed, cuts.Load(), total, twice)
	assert.Positive(t, cuts.Load(), "answers the proxy cut")
	assert.Zero(t, failed)
	assert.Zero(t, twice, "requests handled more than once")
}
