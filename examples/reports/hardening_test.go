package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	ctx := ctxT(t, 20e9)
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
