package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

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
