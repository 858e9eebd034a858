package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/xuri/excelize/v2"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// The whole web flow over real HTTP: POST /reports, the live status stream
// (progress, then done with a download link), the status JSON and the
// download.
func TestWebReportLiveStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	_, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))

	req, from, to := lastMonth()
	body, _ := json.Marshal(req)
	id := postReport(t, srv.URL, string(body))

	evs := streamEvents(t, ctxT(t, 20*time.Second), srv.URL, id)
	require.GreaterOrEqual(t, len(evs), 3, "at least pending or progress, and done: %+v", evs)
	last := evs[len(evs)-1]
	require.Equal(t, stateDone, last.Event, "the stream ends with done: %+v", evs)
	var progress []string
	var prevID string
	for i, ev := range evs[:len(evs)-1] {
		st := decodeStatus(t, ev)
		assert.Equal(t, ev.Event, st.State)
		assert.Contains(t, []string{statePending, stateProgress}, ev.Event, "event %d before the end", i)
		assert.Greater(t, ev.ID, prevID, "ids increase") // same width here: small sequence numbers
		prevID = ev.ID
		if ev.Event == stateProgress {
			var p ReportProgress
			require.NoError(t, json.Unmarshal(st.Notice, &p))
			progress = append(progress, p.Stage)
		}
	}
	assert.Equal(t, "querying", progress[0])
	assert.Contains(t, progress, "writing xlsx")

	done := decodeStatus(t, last)
	assert.Equal(t, id, done.ID)
	assert.Equal(t, req.From, done.From)
	assert.Equal(t, "/reports/"+id+"/download", done.Download)
	var ready ReportReady
	require.NoError(t, json.Unmarshal(done.Notice, &ready))
	assert.Equal(t, id, ready.ReportID, "the report id is the request id")
	want := querySQLTotals(t, filepath.Join(h.dir, "sales.db"), from, to)
	assert.Equal(t, want.Rows, ready.Rows)

	code, st := fetchStatus(t, srv.URL, id)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, stateDone, st.State)
	assert.JSONEq(t, string(done.Notice), string(st.Notice))
	assert.Nil(t, st.Error)

	res, err := http.Get(srv.URL + done.Download)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", res.Header.Get("Content-Type"))
	assert.Contains(t, res.Header.Get("Content-Disposition"), filepath.Base(ready.Path))
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	f, err := excelize.OpenReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer f.Close()
	rows, err := f.GetRows(sheetSales)
	require.NoError(t, err)
	assert.Len(t, rows, want.Rows+2)

	// Resuming after the end: 204, which tells EventSource to stop.
	hreq, _ := http.NewRequest(http.MethodGet, srv.URL+"/reports/"+id+"/events", nil)
	hreq.Header.Set("Last-Event-ID", last.ID)
	res2, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	res2.Body.Close()
	assert.Equal(t, http.StatusNoContent, res2.StatusCode)
	// Resuming in the middle replays what came after.
	hreq.Header.Set("Last-Event-ID", evs[len(evs)-2].ID)
	res3, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	var replay []sseEvent
	require.NoError(t, readSSE(res3.Body, func(ev sseEvent) bool { replay = append(replay, ev); return true }))
	res3.Body.Close()
	require.Len(t, replay, 1)
	assert.Equal(t, last, replay[0])
}

// A report that fails (a bad date range) comes back to the web app as a
// failed status with the worker's code and message, on the stream and in
// the status JSON; nothing hangs.
func TestWebFailedReport(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	_, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))

	cases := []struct{ body, msg string }{
		{`{"from":"2026-11-01","to":"2026-10-01"}`, "from 2026-11-01 is after to 2026-10-01"},
		{`{"from":"last tuesday","to":"2026-10-01"}`, `from: cannot parse "last tuesday": want YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339`},
	}
	for _, c := range cases {
		id := postReport(t, srv.URL, c.body)
		evs := streamEvents(t, ctxT(t, 20*time.Second), srv.URL, id)
		require.NotEmpty(t, evs)
		last := evs[len(evs)-1]
		require.Equal(t, stateFailed, last.Event, "%s: %+v", c.body, evs)
		st := decodeStatus(t, last)
		require.NotNil(t, st.Error)
		assert.Equal(t, StatusError{Code: "invalid_argument", Message: c.msg}, *st.Error)
		assert.Empty(t, st.Download)

		code, got := fetchStatus(t, srv.URL, id)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, stateFailed, got.State)
		assert.Equal(t, st.Error, got.Error)

		res, err := http.Get(srv.URL + "/reports/" + id + "/download")
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusConflict, res.StatusCode, "no download for a failed report")
	}
}

func TestWebBadRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))

	res, err := http.Post(srv.URL+"/reports", "application/json", strings.NewReader(`{"from":`))
	require.NoError(t, err)
	var e struct {
		Error  string
		Status int
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&e))
	res.Body.Close()
	assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	assert.Equal(t, http.StatusBadRequest, e.Status)
	assert.Contains(t, e.Error, "body must be one JSON object")

	for _, path := range []string{"/reports/nope", "/reports/nope/events", "/reports/nope/download"} {
		res, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusNotFound, res.StatusCode, path)
	}

	// No worker runs: the report stays pending, and its download is refused.
	id := postReport(t, srv.URL, `{"from":"2026-10-01","to":"2026-10-31"}`)
	code, st := fetchStatus(t, srv.URL, id)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, statePending, st.State)
	assert.Equal(t, "2026-10-01", st.From)
	res, err = http.Get(srv.URL + "/reports/" + id + "/download")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusConflict, res.StatusCode)

	res, err = http.Get(srv.URL + "/")
	require.NoError(t, err)
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Contains(t, string(page), `<form id="form">`)
}

// Completion notices survive a restart of the web app: it is stopped after
// Send and before any notice is handled, the worker finishes meanwhile, and
// the restarted app (same SQLite file, same notice group) gets the
// completion.
func TestWebDurableNotices(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dbPath := filepath.Join(h.dir, "web.db")
	_, srv, stop := h.startWeb(dbPath)
	req, _, _ := lastMonth()
	body, _ := json.Marshal(req)
	id := postReport(t, srv.URL, string(body))
	code, st := fetchStatus(t, srv.URL, id)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, statePending, st.State)
	stop() // the web app is down before the worker even starts

	h.startWorker()
	noticeTopic := webName + ".notices"
	require.Eventually(t, func() bool {
		return hasReply(t, h, noticeTopic, id)
	}, 20*time.Second, 10*time.Millisecond, "the worker's completion notice is on %s", noticeTopic)

	_, srv2, _ := h.startWeb(dbPath)
	evs := streamEvents(t, ctxT(t, 20*time.Second), srv2.URL, id)
	require.Equal(t, statePending, evs[0].Event, "the history starts with the request the first app made")
	last := evs[len(evs)-1]
	require.Equal(t, stateDone, last.Event, "%+v", evs)
	var ready ReportReady
	require.NoError(t, json.Unmarshal(decodeStatus(t, last).Notice, &ready))
	assert.Equal(t, id, ready.ReportID)
	assert.FileExists(t, filepath.Join(h.dir, ready.Path))
	code, st = fetchStatus(t, srv2.URL, id)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, stateDone, st.State)
	assert.Equal(t, req.From, st.From, "the period recorded by the first app is kept")
}

// hasReply reports whether the notice topic holds the reply to request id.
func hasReply(t *testing.T, h *harness, topic, id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	parts := h.broker.Topics()[topic]
	for p := range parts {
		msgs, err := h.broker.Fetch(ctx, topic, p, 0, 1000)
		if err != nil {
			continue // nothing there yet: Fetch waited out its context
		}
		for _, m := range msgs {
			kind, _ := m.Header(rpc.HeaderKind)
			corr, _ := m.Header(rpc.HeaderCorrelationID)
			if kind == string(rpc.KindReply) && corr == id {
				return true
			}
		}
	}
	return false
}

// A notice delivered twice (as at-least-once delivery may) is stored once.
func TestStoreIgnoresDuplicateNotices(t *testing.T) {
	t.Parallel()
	store, err := openStatusStore(context.Background(), filepath.Join(t.TempDir(), "web.db"))
	require.NoError(t, err)
	defer store.Close()
	ctx := context.Background()
	require.NoError(t, store.create(ctx, "r1", "2026-10-01", "2026-10-31"))
	apply := func(n notice) bool {
		changed, err := store.apply(ctx, n)
		require.NoError(t, err)
		return changed
	}
	assert.True(t, apply(notice{ReportID: "r1", NoticeID: "n1", State: stateProgress, Payload: json.RawMessage(`{"stage":"querying"}`)}))
	assert.False(t, apply(notice{ReportID: "r1", NoticeID: "n1", State: stateProgress, Payload: json.RawMessage(`{"stage":"querying"}`)}))
	assert.True(t, apply(notice{ReportID: "r1", NoticeID: "n2", State: stateDone, Payload: json.RawMessage(`{"report_id":"r1"}`), Path: "/x.xlsx"}))
	assert.False(t, apply(notice{ReportID: "r1", NoticeID: "n3", State: stateProgress, Payload: json.RawMessage(`{}`)}), "nothing changes a finished report")
	evs, err := store.eventsSince(ctx, "r1", 0)
	require.NoError(t, err)
	var states []string
	for _, e := range evs {
		states = append(states, e.State)
	}
	assert.Equal(t, []string{statePending, stateProgress, stateDone}, states)

	// A notice for a report never created changes nothing: errNotFound.
	_, err = store.apply(ctx, notice{ReportID: "r2", NoticeID: "n4", State: stateProgress, Payload: json.RawMessage(`{}`)})
	assert.ErrorIs(t, err, errNotFound)
	_, err = store.get(ctx, "r3")
	assert.ErrorIs(t, err, errNotFound)
}

// readSSE and writeSSE agree, including multi-line data and comments.
func TestSSERoundTrip(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, writeSSE(&b, "7", "progress", []byte("line one\nline two")))
	b.WriteString(": keep-alive\n\nretry: 1000\n\n")
	require.NoError(t, writeSSE(&b, "", "", []byte(`{}`)))
	var got []sseEvent
	require.NoError(t, readSSE(&b, func(ev sseEvent) bool { got = append(got, ev); return true }))
	assert.Equal(t, []sseEvent{{ID: "7", Event: "progress", Data: "line one\nline two"}, {Data: "{}"}}, got)
}

// Several reports at once: the worker runs them concurrently over one
// SQLite file, the web app stores their notices concurrently, and each
// stream ends with its own report.
func TestWebConcurrentReports(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startWorker()
	_, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))

	const n = 6
	type result struct {
		id   string
		last sseEvent
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			// Different periods: the last 1..n weeks.
			today := time.Now().UTC()
			body := `{"from":"` + today.AddDate(0, 0, -7*(i+1)).Format(time.DateOnly) + `","to":"` + today.Format(time.DateOnly) + `"}`
			res, err := http.Post(srv.URL+"/reports", "application/json", strings.NewReader(body))
			if !assert.NoError(t, err) {
				results <- result{}
				return
			}
			var started struct{ ID string }
			assert.NoError(t, json.NewDecoder(res.Body).Decode(&started))
			res.Body.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/reports/"+started.ID+"/events", nil)
			res, err = http.DefaultClient.Do(req)
			if !assert.NoError(t, err) {
				results <- result{}
				return
			}
			defer res.Body.Close()
			var last sseEvent
			assert.NoError(t, readSSE(res.Body, func(ev sseEvent) bool { last = ev; return true }))
			results <- result{started.ID, last}
		}()
	}
	paths := map[string]bool{}
	for range n {
		r := <-results
		require.Equal(t, stateDone, r.last.Event, "report %s", r.id)
		var ready ReportReady
		require.NoError(t, json.Unmarshal(decodeStatus(t, r.last).Notice, &ready))
		assert.Equal(t, r.id, ready.ReportID)
		assert.FileExists(t, filepath.Join(h.dir, ready.Path))
		paths[ready.Path] = true
	}
	assert.Len(t, paths, n, "one file per report")
}

// Stopping the web app ends its live streams at once, even for a report
// that is still pending, so the HTTP server's graceful shutdown does not
// wait for them.
func TestWebStopEndsLiveStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	web, err := startWeb(context.Background(), h.broker, config{dir: h.dir, addr: "127.0.0.1:0"}, h.log)
	require.NoError(t, err)
	base := strings.TrimSuffix(web.url, "/")
	id := postReport(t, base, `{"from":"2026-10-01","to":"2026-10-31"}`)

	res, err := http.Get(base + "/reports/" + id + "/events")
	require.NoError(t, err)
	defer res.Body.Close()
	events := make(chan sseEvent, 4)
	ended := make(chan error, 1)
	go func() {
		ended <- readSSE(res.Body, func(ev sseEvent) bool { events <- ev; return true })
	}()
	select {
	case ev := <-events:
		require.Equal(t, statePending, ev.Event)
	case <-time.After(10 * time.Second):
		t.Fatal("no pending event")
	}
	start := time.Now()
	require.NoError(t, web.stop(), "a graceful shutdown, not one cut at its timeout")
	assert.Less(t, time.Since(start), 3*time.Second)
	select {
	case err := <-ended:
		assert.NoError(t, err, "the stream ended cleanly")
	case <-time.After(10 * time.Second):
		t.Fatal("the live stream did not end when the web app stopped")
	}
}
