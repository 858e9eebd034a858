package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Tests of issue 14's findings on the web app (9, 10, 11, 13, 14).

// forgedReady is a completion notice as anyone able to produce on
// web.notices could write it.
func forgedReady(corr, path string) *rpc.Reply {
	payload, _ := json.Marshal(ReportReady{ReportID: corr, Path: path, Rows: 1})
	return &rpc.Reply{Message: transport.Message{Value: payload}, ID: uuid.NewString(), CorrelationID: corr, Kind: rpc.KindReply}
}

// getBody GETs url and returns the status code and body.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// Finding 9: a forged completion notice neither creates a report nor makes
// the app serve a file outside its reports folder.
func TestWebNoticeTrust(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))
	ctx := ctxT(t, 20*time.Second)
	secretDir := t.TempDir()
	outside := filepath.Join(secretDir, "secret.xlsx")
	require.NoError(t, os.WriteFile(outside, []byte("SECRET"), 0o644))

	// An id the app never issued: ignored (and committed: nil), logged.
	require.NoError(t, app.onNotice(ctx, forgedReady("never-issued", outside)))
	code, _ := getBody(t, srv.URL+"/reports/never-issued")
	assert.Equal(t, http.StatusNotFound, code)
	code, body := getBody(t, srv.URL+"/reports/never-issued/download")
	assert.Equal(t, http.StatusNotFound, code)
	assert.NotContains(t, body, "SECRET")
	assert.Contains(t, h.logs.String(), "never-issued")

	// Ids it issued, with paths that leave the reports folder: outright,
	// through "..", and through a symbolic link inside the folder.
	link := filepath.Join(h.dir, "link.xlsx")
	require.NoError(t, os.Symlink(outside, link))
	for _, path := range []string{
		outside,
		filepath.Join(h.dir, "..", filepath.Base(secretDir), "secret.xlsx"),
		link,
		"secret.xlsx",
	} {
		id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
		require.NoError(t, app.onNotice(ctx, forgedReady(id, path)))
		code, body := getBody(t, srv.URL+"/reports/"+id+"/download")
		assert.NotEqual(t, http.StatusOK, code, path)
		assert.NotContains(t, body, "SECRET", path)
	}
}

// Finding 14 (web part): POST /reports takes one JSON object with the
// known fields, both given, and nothing after it; the 400 names no Go
// internals.
func TestWebStrictDecoding(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))
	for _, body := range []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`"x"`,
		`{"from":"2026-10-01"}`,
		`{"from":"2026-10-01","to":null}`,
		`{"from":1,"to":2}`,
		`{"from":"2026-10-01","to":"2026-10-31","extra":1}`,
		`{"from":"2026-10-01","to":"2026-10-31"} trailing`,
		`{"from":"2026-10-01","to":"2026-10-31"}{}`,
		`{"from":"2026-10-01","to":"2026-10-31"}null`,
	} {
		res, err := http.Post(srv.URL+"/reports", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, "body %q: %s", body, b)
		assert.NotContains(t, string(b), "Go struct", body)
		assert.NotContains(t, string(b), "ReportRequest", body)
	}
	// Whitespace around the one object is fine.
	postReport(t, srv.URL, " {\"from\":\"2026-10-01\",\"to\":\"2026-10-31\"}\n")
}

// Finding 13 (web part): the status JSON shows no server path, and a
// failing store gives a generic 500 (the details go to the log).
func TestWebGenericErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	app, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))
	req, _, _ := lastMonth()
	body, _ := json.Marshal(req)
	id := postReport(t, srv.URL, string(body))
	evs := streamEvents(t, ctxT(t, 20*time.Second), srv.URL, id)
	require.Equal(t, stateDone, evs[len(evs)-1].Event)
	for _, ev := range evs {
		assert.NotContains(t, ev.Data, h.dir, "event %s", ev.Event)
	}
	code, status := getBody(t, srv.URL+"/reports/"+id)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, status, h.dir)
	var st Status
	require.NoError(t, json.Unmarshal([]byte(status), &st))
	var ready ReportReady
	require.NoError(t, json.Unmarshal(st.Notice, &ready))
	assert.Equal(t, filepath.Base(ready.Path), ready.Path, "the notice names the file, not where it is")

	require.NoError(t, app.store.db.Close()) // every query now fails
	for _, path := range []string{"/reports/" + id, "/reports/" + id + "/events", "/reports/" + id + "/download"} {
		code, body := getBody(t, srv.URL+path)
		assert.Equal(t, http.StatusInternalServerError, code, path)
		assert.Contains(t, body, "internal error", path)
		assert.NotContains(t, body, "sql", path)
	}
	res, err := http.Post(srv.URL+"/reports", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.NotContains(t, string(b), "sql")
	assert.Contains(t, h.logs.String(), "sql: database is closed", "the details are logged")
}

// shortTimeouts are the web server's timeouts cut short for tests.
func shortTimeouts(h *harness) webConfig {
	return webConfig{
		DBPath: filepath.Join(h.dir, "web.db"), Dir: h.dir,
		ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
		StreamKeepAlive: 100 * time.Millisecond,
	}
}

// closedByServer reports whether the server closes conn (after answering
// whatever it was sent) within d.
func closedByServer(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(d)))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Finding 10: a trickled body and an idle keep-alive connection are cut,
// while a live event stream outlives the read and write timeouts.
func TestWebServerTimeouts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, srv, _ := h.startWebWith(shortTimeouts(h))
	addr := srv.Listener.Addr().String()

	trickle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer trickle.Close()
	_, err = io.WriteString(trickle, "POST /reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	require.NoError(t, err)
	assert.True(t, closedByServer(t, trickle, 5*time.Second), "a body that never comes is cut")

	idle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer idle.Close()
	_, err = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	assert.True(t, closedByServer(t, idle, 5*time.Second), "an idle keep-alive connection is closed")

	// A stream of a pending report: it outlives both timeouts several times
	// over (keep-alives flow meanwhile), then still carries the next event.
	id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
	res, err := http.Get(srv.URL + "/reports/" + id + "/events")
	require.NoError(t, err)
	defer res.Body.Close()
	events := make(chan sseEvent, 8)
	go readSSE(res.Body, func(ev sseEvent) bool { events <- ev; return true }) //nolint:errcheck // ends with the body
	nextEvent := func() sseEvent {
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return sseEvent{}
	}
	require.Equal(t, statePending, nextEvent().Event)
	<-time.After(1500 * time.Millisecond) // five times the timeouts: time must pass here
	progress := forgedReady(id, "")
	progress.Kind, progress.Value = rpc.KindProgress, []byte(`{"stage":"querying","message":"q"}`)
	require.NoError(t, app.onNotice(ctxT(t, 10*time.Second), progress))
	assert.Equal(t, stateProgress, nextEvent().Event, "the stream survived the server's timeouts")
}

// Finding 10: live event streams are limited; one more gets a clear 503.
func TestWebStreamLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wc := shortTimeouts(h)
	wc.MaxStreams = 2
	_, srv, _ := h.startWebWith(wc)
	id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/reports/"+id+"/events", nil)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return res, cancel
	}
	r1, c1 := open()
	defer c1()
	r2, c2 := open()
	defer c2()
	require.Equal(t, http.StatusOK, r1.StatusCode)
	require.Equal(t, http.StatusOK, r2.StatusCode)
	r3, c3 := open()
	b, _ := io.ReadAll(r3.Body)
	r3.Body.Close()
	c3()
	assert.Equal(t, http.StatusServiceUnavailable, r3.StatusCode)
	assert.NotEmpty(t, r3.Header.Get("Retry-After"))
	assert.Contains(t, string(b), "too many live streams")

	c1() // a client leaves: its place is free again
	r1.Body.Close()
	require.Eventually(t, func() bool {
		r, c := open()
		defer c()
		defer r.Body.Close()
		return r.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
}

// Finding 10: streams opened and dropped by many clients leave no database
// handles behind, and the store's pool is bounded while they run.
func TestWebStreamsLeakNoHandles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
	limit := app.store.db.Stats().MaxOpenConnections
	require.Positive(t, limit, "the store's connection pool is bounded")

	const n = 200
	var wg sync.WaitGroup
	var peak atomic.Int64
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/reports/"+id+"/events", nil)
			res, err := hc.Do(req)
			if !assert.NoError(t, err) {
				return
			}
			defer res.Body.Close()
			assert.Equal(t, http.StatusOK, res.StatusCode)
			readSSE(res.Body, func(sseEvent) bool { return false }) //nolint:errcheck // one event, then leave
			o := int64(app.store.db.Stats().OpenConnections)
			for p := peak.Load(); o > p && !peak.CompareAndSwap(p, o); p = peak.Load() {
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int64(limit))
	require.Eventually(t, func() bool {
		st := app.store.db.Stats()
		return st.InUse == 0 && st.OpenConnections <= st.MaxOpenConnections
	}, 10*time.Second, 20*time.Millisecond, "%+v", app.store.db.Stats())
}

// Finding 11: reports finished more than KeepFor ago are deleted, files and
// records:
// the web app then knows them no more. Old report files it has no record
// of (the worker's legacy reports) go too; other files stay.
func TestWebDeletesOldReports(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	stray := filepath.Join(h.dir, "sales_20261001_20261031_legacy.xlsx")
	require.NoError(t, os.WriteFile(stray, []byte("old"), 0o644))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(stray, old, old))
	other := filepath.Join(h.dir, "notes.txt")
	require.NoError(t, os.WriteFile(other, []byte("mine"), 0o644))
	require.NoError(t, os.Chtimes(other, old, old))

	wc := webConfig{DBPath: filepath.Join(h.dir, "web.db"), Dir: h.dir, KeepFor: time.Second, SweepEvery: 50 * time.Millisecond}
	_, srv, _ := h.startWebWith(wc)
	req, _, _ := lastMonth()
	body, _ := json.Marshal(req)
	id := postReport(t, srv.URL, string(body))
	evs := streamEvents(t, ctxT(t, 20*time.Second), srv.URL, id)
	require.Equal(t, stateDone, evs[len(evs)-1].Event)
	var ready ReportReady
	require.NoError(t, json.Unmarshal(decodeStatus(t, evs[len(evs)-1]).Notice, &ready))
	file := filepath.Join(h.dir, ready.Path)
	require.FileExists(t, file)

	require.Eventually(t, func() bool {
		code, _ := getBody(t, srv.URL+"/reports/"+id)
		return code == http.StatusNotFound
	}, 20*time.Second, 20*time.Millisecond, "the report's record is deleted")
	assert.NoFileExists(t, file)
	code, _ := getBody(t, srv.URL+"/reports/"+id+"/download")
	assert.Equal(t, http.StatusNotFound, code)
	assert.NoFileExists(t, stray, "an old report file with no record goes too")
	assert.FileExists(t, other, "files that are not reports stay")
	assert.FileExists(t, filepath.Join(h.dir, "sales.db"))
	assert.FileExists(t, filepath.Join(h.dir, "web.db"))
}

// Finding 11: an unfinished report is kept a day past KeepFor (its worker
// may still answer), then deleted too.
func TestWebSweepUnfinished(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, srv, _ := h.startWebWith(webConfig{DBPath: filepath.Join(h.dir, "web.db"), Dir: h.dir, KeepFor: time.Second, SweepEvery: time.Hour})
	id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
	ctx := ctxT(t, 10*time.Second)
	n, err := app.sweep(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Zero(t, n)
	code, _ := getBody(t, srv.URL+"/reports/"+id)
	assert.Equal(t, http.StatusOK, code, "a pending report is kept past KeepFor")
	n, err = app.sweep(ctx, time.Now().Add(time.Second+staleAfter+time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	code, _ = getBody(t, srv.URL+"/reports/"+id)
	assert.Equal(t, http.StatusNotFound, code)
}

// Finding 13: a worker failure other than a bad request (which may name the
// worker's files or database) reaches clients as a generic message; the
// details are logged.
func TestWebWorkerFailureGeneric(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	app, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))
	id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
	failed := forgedReady(id, "")
	failed.Value = nil
	failed.Err = rpc.Errorf(rpc.CodeInternal, "write xlsx: open /srv/secret/dir/x.xlsx: SQLITE_BUSY")
	require.NoError(t, app.onNotice(ctxT(t, 10*time.Second), failed))
	code, body := getBody(t, srv.URL+"/reports/"+id)
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, "/srv/secret")
	assert.NotContains(t, body, "SQLITE")
	assert.Contains(t, body, "the report could not be made")
	assert.Contains(t, h.logs.String(), "/srv/secret/dir/x.xlsx", "the details are logged")
}
