package restserver

import (
	"bufio"
	"net"
	"net/http"
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
