package restserver_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
)

// rawRequest sends one HTTP/1.1 request on a new TCP connection and returns
// the connection and the response.
func rawRequest(t *testing.T, url, req string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, resp
}

// TestUnauthenticatedConnectionIsClosed: a request that fails
// authentication is answered with Connection: close and the server closes
// the connection, so clients without credentials keep no idle connections
// (finding 6: 1,014 idle connections after one 401 each exhausted the file
// descriptors).
func TestUnauthenticatedConnectionIsClosed(t *testing.T) {
	t.Parallel()
	s := resttest.Start(t, resttest.Config{Serve: true, Server: []restserver.Option{restserver.WithCredentials(testUser, testPass)}})
	c, resp := rawRequest(t, s.URL, "GET /topics HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.True(t, resp.Close, "Connection: close")
	_, err := c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the server closed the connection")
}

// TestIdleTimeoutDefault: idle keep-alive connections are closed well
// before 120 s by default (finding 6).
func TestIdleTimeoutDefault(t *testing.T) {
	assert.LessOrEqual(t, restserver.DefaultIdleTimeout, 30*time.Second)
}

// TestConnectionLimitAdmitsAuthenticated: with the connection limit held
// by silent connections without credentials, an authenticated client still
// gets through, and its idle keep-alive connection is not the one closed
// for room (finding 6).
func TestConnectionLimitAdmitsAuthenticated(t *testing.T) {
	t.Parallel()
	s := resttest.Start(t, resttest.Config{Serve: true, Server: []restserver.Option{
		restserver.WithCredentials(testUser, testPass), restserver.WithMaxConnections(8)}})
	auth := "GET /topics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + basic(testUser, testPass) + "\r\n\r\n"
	kept, resp := rawRequest(t, s.URL, auth)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for range 20 { // silent connections: no request, no credentials
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
	}
	_, resp = rawRequest(t, s.URL, auth)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a new authenticated connection at the limit")

	// The first connection, authenticated and idle, was kept.
	_, err := io.WriteString(kept, auth)
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(kept), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
