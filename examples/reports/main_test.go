package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer = testutil.SyncBuffer

// testLogger logs into a buffer that is printed if the test fails.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// harness is one broker with the two servers of the example on it, each
// started when a test asks for it.
type harness struct {
	t      *testing.T
	broker *memory.Broker
	dir    string
	log    *slog.Logger
	logs   *syncBuffer
	worker *worker
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	log, logs := testLogger(t)
	b, err := memory.New(memory.WithTopic(reportsTopic, 3))
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return &harness{t: t, broker: b, dir: t.TempDir(), log: log, logs: logs}
}

// startWorker runs server two until the test ends (or stop is called).
func (h *harness) startWorker() (stop func()) {
	h.t.Helper()
	if h.worker == nil {
		w, err := newWorker(context.Background(), filepath.Join(h.dir, "sales.db"), h.dir, h.log)
		require.NoError(h.t, err)
		h.t.Cleanup(func() { w.Close() })
		h.worker = w
	}
	s, err := newReportsServer(h.broker, h.worker, rpc.WithDrainTimeout(5*time.Second))
	require.NoError(h.t, err)
	stopServe := rpctest.Serve(h.t, s)
	return func() { require.NoError(h.t, stopServe(), "Serve") }
}

// startWeb runs server one with its store at dbPath behind a loopback HTTP
// server.
func (h *harness) startWeb(dbPath string) (*webApp, *httptest.Server, func()) {
	h.t.Helper()
	return h.startWebWith(webConfig{DBPath: dbPath, Dir: h.dir})
}

// startWebWith is startWeb with a whole webConfig.
func (h *harness) startWebWith(wc webConfig) (*webApp, *httptest.Server, func()) {
	h.t.Helper()
	app, err := newWebApp(context.Background(), h.broker, wc, h.log)
	require.NoError(h.t, err)
	srv := httptest.NewUnstartedServer(app)
	srv.Config = newHTTPServer(app, h.log)
	srv.Start()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			app.endStreams()
			srv.Close()
			require.NoError(h.t, app.Close())
		})
	}
	h.t.Cleanup(stop)
	return app, srv, stop
}

// postReport starts a report through the HTTP API and returns its id.
func postReport(t *testing.T, base string, body string) string {
	t.Helper()
	res, err := http.Post(base+"/reports", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	var out struct{ ID, Status, Events string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	require.NotEmpty(t, out.ID)
	require.Equal(t, "/reports/"+out.ID, res.Header.Get("Location"))
	require.Equal(t, "/reports/"+out.ID+"/events", out.Events)
	return out.ID
}

// fetchStatus reads GET /reports/{id}.
func fetchStatus(t *testing.T, base, id string) (int, Status) {
	t.Helper()
	res, err := http.Get(base + "/reports/" + id)
	require.NoError(t, err)
	defer res.Body.Close()
	var st Status
	if res.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(res.Body).Decode(&st))
	} else {
		io.Copy(io.Discard, res.Body) //nolint:errcheck
	}
	return res.StatusCode, st
}

// streamEvents follows GET /reports/{id}/events over real HTTP until the
// stream ends, and returns its events.
func streamEvents(t *testing.T, ctx context.Context, base, id string) []sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/reports/"+id+"/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	var evs []sseEvent
	require.NoError(t, readSSE(res.Body, func(ev sseEvent) bool {
		evs = append(evs, ev)
		return true
	}))
	require.NoError(t, ctx.Err(), "the stream must end by itself after the last event")
	return evs
}

func decodeStatus(t *testing.T, ev sseEvent) Status {
	t.Helper()
	var st Status
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &st), "event %s: %s", ev.Event, ev.Data)
	return st
}
