package restserver_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Security of Serve against slow clients (issue 5, part 8): a connection
// opened and never fed, headers or a body trickled a byte at a time, and an
// idle keep-alive connection are all cut off by Serve's timeouts, while
// requests of normal clients, long polls included, go on being served.

// slowTimeouts are short, so that the test is quick; the long polls of the
// server (max timeout 100ms) still fit in them.
var slowTimeouts = restserver.Timeouts{
	ReadHeader: 200 * time.Millisecond,
	Read:       400 * time.Millisecond,
	Write:      time.Second,
	Idle:       300 * time.Millisecond,
}

// serveOnLoopback runs srv.Serve on a 127.0.0.1 listener until the test
// ends and returns the address.
func serveOnLoopback(t *testing.T, opts ...restserver.Option) (addr string, srv *restserver.Server) {
	t.Helper()
	s := resttest.Start(t, resttest.Config{
		Broker: []memory.Option{memory.WithTopic("t", 1)},
		Server: append([]restserver.Option{restserver.WithCredentials(testUser, testPass)}, opts...),
		Serve:  true,
	})
	return strings.TrimPrefix(s.URL, "http://"), s.REST
}

// trickle writes prefix, then the bytes of drip one every 20ms, until the
// connection fails or stop closes. It reports how many bytes of drip it
// wrote.
func trickle(conn net.Conn, prefix, drip string, stop <-chan struct{}) <-chan int {
	done := make(chan int, 1)
	go func() {
		n := 0
		defer func() { done <- n }()
		if _, err := io.WriteString(conn, prefix); err != nil {
			return
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n < len(drip) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{drip[n]}); err != nil {
				return
			}
			n++
		}
	}()
	return done
}

func TestSlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	addr, _ := serveOnLoopback(t, restserver.WithMaxTimeout(100*time.Millisecond), restserver.WithTimeouts(slowTimeouts))
	auth := "Authorization: Basic " + basic(testUser, testPass) + "\r\n"
	body := `{"value":"` + strings.Repeat("x", 500) + `"}`
	tests := []struct {
		name         string
		prefix, drip string        // what the client sends: prefix at once, then drip a byte every 20ms
		wantStatus   int           // the answer before the connection closes; 0: none
		atLeast      time.Duration // the timeout that must have cut the connection
	}{
		{name: "connection never fed", atLeast: slowTimeouts.ReadHeader},
		{name: "request line trickled", drip: "GET /topics HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: y\r\n", 100),
			atLeast: slowTimeouts.ReadHeader},
		{name: "headers trickled", prefix: "GET /topics HTTP/1.1\r\nHost: x\r\n" + auth, drip: strings.Repeat("X-Slow: y\r\n", 100),
			atLeast: slowTimeouts.ReadHeader},
		{name: "body trickled", prefix: fmt.Sprintf("POST /produce/t HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n", auth, len(body)),
			drip: body, wantStatus: http.StatusRequestTimeout, atLeast: slowTimeouts.Read},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			stop := make(chan struct{})
			start := time.Now()
			wrote := trickle(conn, tt.prefix, tt.drip, stop)
			defer func() {
				close(stop)
				<-wrote
				_ = conn.Close()
			}()

			type answer struct {
				resp *http.Response
				err  error
			}
			closed := make(chan answer, 1)
			go func() {
				var a answer
				br := bufio.NewReader(conn)
				if tt.wantStatus != 0 {
					if a.resp, a.err = http.ReadResponse(br, nil); a.err == nil {
						_, a.err = io.ReadAll(a.resp.Body)
					}
				}
				if a.err == nil {
					_, a.err = io.ReadAll(br) // until the server closes the connection
				}
				closed <- a
			}()
			// The drips take 10s and more: a close within 5s cut them short
			// (the defaults would keep the connection 10s to 2 min).
			select {
			case a := <-closed:
				elapsed := time.Since(start)
				t.Logf("cut off after %v (read error: %v)", elapsed.Round(time.Millisecond), a.err) // a reset counts too
				assert.GreaterOrEqual(t, elapsed, tt.atLeast-10*time.Millisecond, "cut off by the right timeout")
				if tt.wantStatus != 0 {
					require.NotNil(t, a.resp, "an answer before the close")
					assert.Equal(t, tt.wantStatus, a.resp.StatusCode)
					assert.Equal(t, "application/json", a.resp.Header.Get("Content-Type"))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the server kept the slow connection open")
			}
		})
	}
}

// An idle keep-alive connection is closed after the idle timeout, and a
// normal client's requests, a long poll of the full max timeout included,
// are served in between.
func TestIdleConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	addr, _ := serveOnLoopback(t, restserver.WithMaxTimeout(100*time.Millisecond), restserver.WithTimeouts(slowTimeouts))
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	br := bufio.NewReader(conn)
	send := func(method, path, body string) *http.Response {
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		require.NoError(t, err)
		req.SetBasicAuth(testUser, testPass)
		require.NoError(t, req.Write(conn))
		resp, err := http.ReadResponse(br, req)
		require.NoError(t, err)
		_, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp
	}
	assert.Equal(t, http.StatusOK, send("GET", "/topics", "").StatusCode)
	// A long poll waits out the whole max timeout (100ms) and answers [].
	start := time.Now()
	assert.Equal(t, http.StatusOK, send("POST", "/consume/g/i", `{"topic":"t","timeout":100000}`).StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

	idle := time.Now()
	closed := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(br)
		closed <- err
	}()
	select {
	case <-closed:
		// Closed for idleness, not at once. The server's idle clock starts
		// when it has written the response, which the client only sees
		// later (by tens of ms on a loaded machine), so the bound leaves
		// room for that.
		assert.GreaterOrEqual(t, time.Since(idle), slowTimeouts.Idle/2)
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection was kept open")
	}
}

// Request headers over 1 MiB are refused (431) before the handler runs.
func TestHeadersOverLimitAreRefused(t *testing.T) {
	t.Parallel()
	addr, srv := serveOnLoopback(t)
	req, err := http.NewRequest("GET", "http://"+addr+"/topics", nil)
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	req.Header.Set("X-Big", strings.Repeat("x", 2<<20))
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	assert.Zero(t, srv.Stats().Requests, "the handler never saw it")
}

func TestTimeoutsValidation(t *testing.T) {
	t.Parallel()
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	backend := restserver.NewMemoryBackend(b)
	quiet := restserver.WithLogger(slog.New(slog.DiscardHandler))
	bad := []struct {
		name string
		opts []restserver.Option
	}{
		{"negative", []restserver.Option{restserver.WithTimeouts(restserver.Timeouts{Idle: -time.Second})}},
		{"read below read header", []restserver.Option{restserver.WithTimeouts(restserver.Timeouts{ReadHeader: time.Minute, Read: 50 * time.Second})}},
		{"write not above max timeout", []restserver.Option{restserver.WithTimeouts(restserver.Timeouts{Write: 30 * time.Second})}},
		{"read not above max timeout", []restserver.Option{restserver.WithMaxTimeout(time.Second),
			restserver.WithTimeouts(restserver.Timeouts{ReadHeader: 100 * time.Millisecond, Read: 500 * time.Millisecond})}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			s, err := restserver.New(backend, append(tt.opts, quiet)...)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), "restserver: invalid option")
		})
	}
	// The defaults follow a longer max timeout.
	s, err := restserver.New(backend, quiet, restserver.WithMaxTimeout(90*time.Second))
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
