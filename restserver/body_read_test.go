package restserver_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Request bodies reach the handlers whole however they are sent: a
// declared length read at once (into a pooled buffer for produce, consume
// and fetch), a declared length past the upfront size (read as it arrives,
// up to the declared length), or chunked with no declared length. A body
// shorter than declared is a clear 400 and produces nothing.
func TestRequestBodyForms(t *testing.T) {
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("forms", 1)}})
	small := `{"topic":"forms","value":"small"}`
	bigValue := strings.Repeat("v", 200<<10) // past the 64 KiB read up front
	big := `{"topic":"forms","value":"` + bigValue + `"}`

	post := func(body io.Reader, length int64) reply {
		t.Helper()
		r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/produce", body)
		require.NoError(t, err)
		r.ContentLength = length
		r.SetBasicAuth(testUser, testPass)
		resp, err := e.client.Do(r)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return reply{status: resp.StatusCode, body: string(b)}
	}
	// io.MultiReader hides the length: net/http sends it chunked.
	for name, rp := range map[string]reply{
		"small declared":   post(strings.NewReader(small), int64(len(small))),
		"large declared":   post(strings.NewReader(big), int64(len(big))),
		"small chunked":    post(io.MultiReader(strings.NewReader(small)), -1),
		"large chunked":    post(io.MultiReader(strings.NewReader(big)), -1),
		"consume declared": e.req(http.MethodPost, "/consume/g/i", `{"topics":["forms"],"timeout":0}`),
	} {
		assert.Equal(t, http.StatusOK, rp.status, "%s: %s", name, rp.body)
	}
	assert.Equal(t, int64(4), e.latest("forms", 0), "four records produced")
	msgs, err := e.backend.Fetch(t.Context(), transport.Offset{Topic: "forms"}, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 4)
	assert.Equal(t, bigValue, string(msgs[1].Value))
	assert.Equal(t, bigValue, string(msgs[3].Value))

	// Declared longer than sent: the client half-closes after part of it.
	for _, declared := range []int{len(small) + 10, len(big) + 10} {
		sent := small
		if declared > len(big) {
			sent = big
		}
		st, body := rawShortBody(t, e.url, "/produce", sent, declared)
		assert.Equal(t, http.StatusBadRequest, st, body)
		assert.Contains(t, body, "reading request body")
	}
	assert.Equal(t, int64(4), e.latest("forms", 0), "a short body produced nothing")
}

// rawShortBody sends a POST declaring declared bytes of body but sending
// only sent, half-closes the connection and returns the answer.
func rawShortBody(t *testing.T, base, path, sent string, declared int) (int, string) {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	c, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", path, auth, declared, sent)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Every answer carries a Content-Length, small (computed by net/http) or
// large (set by the server): none is sent chunked.
func TestAnswersHaveContentLength(t *testing.T) {
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("cl", 1)}})
	e.ok(http.MethodPost, "/produce", `{"topic":"cl","value":"`+strings.Repeat("x", 4000)+`"}`)
	for _, q := range []struct{ method, path, body string }{
		{http.MethodGet, "/topics", ""},                                        // small
		{http.MethodPost, "/fetch", `{"topic":"cl","partition":0,"offset":0}`}, // over 2 KiB
		{http.MethodGet, "/nowhere", ""},                                       // an error
	} {
		r, err := http.NewRequestWithContext(t.Context(), q.method, e.url+q.path, strings.NewReader(q.body))
		require.NoError(t, err)
		r.SetBasicAuth(testUser, testPass)
		resp, err := e.client.Do(r)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Empty(t, resp.TransferEncoding, "%s %s", q.method, q.path)
		assert.Equal(t, int64(len(b)), resp.ContentLength, "%s %s", q.method, q.path)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", q.method, q.path)
	}
}
