package restserver

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnLimiterRefusesWhenAllBusy: at the limit with every connection
// busy, a new one is answered 503 with Retry-After and closed.
func TestConnLimiterRefusesWhenAllBusy(t *testing.T) {
	l := newConnLimiter(2)
	var ends []net.Conn
	for range 2 {
		a, b := net.Pipe()
		ends = append(ends, b)
		defer a.Close()
		defer b.Close()
		require.True(t, l.admit(a))
		l.connState(a, http.StateActive)
	}
	a, b := net.Pipe()
	defer b.Close()
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(b), nil)
		if err == nil {
			resp.Body.Close()
		}
		got <- resp
	}()
	assert.False(t, l.admit(a))
	select {
	case resp := <-got:
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}

	// One goes idle: the next connection takes its place.
	l.connState(ends[0], http.StateIdle) // not registered: ignored
	c, d := net.Pipe()
	defer c.Close()
	defer d.Close()
	for conn := range l.conns {
		l.connState(conn, http.StateIdle)
		break
	}
	assert.True(t, l.admit(c))
	assert.Len(t, l.conns, 2)
}

// TestLoginLimiterRefills: an address out of tries gets one back every
// minute/limit, and the table of addresses stays bounded.
func TestLoginLimiterRefills(t *testing.T) {
	l := newLoginLimiter(6) // one try back every 10 s
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range 6 {
		require.Zero(t, l.blocked("a"))
		l.failed("a")
	}
	assert.Equal(t, 10*time.Second, l.blocked("a"))
	assert.Zero(t, l.blocked("b"), "other addresses are not affected")
	now = now.Add(4 * time.Second)
	assert.Equal(t, 6*time.Second, l.blocked("a"))
	now = now.Add(6 * time.Second)
	assert.Zero(t, l.blocked("a"))

	for i := range maxLoginBuckets + 10 {
		l.failed(strconv.Itoa(i))
	}
	assert.LessOrEqual(t, len(l.buckets), maxLoginBuckets)
}
