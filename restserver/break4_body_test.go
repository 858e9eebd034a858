package restserver_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreak4DeclaredLengthAllocatesBeforeBody: a request that only
// declares a large Content-Length (and never sends the body) makes the
// server allocate that many bytes at once (readBody's buf.Grow), and holds
// them until the read timeout. A ~150-byte header from any authenticated
// user — here one with no produce right at all, since /produce reads the
// body before checking rights — pins 16 MiB; a few hundred connections pin
// gigabytes. The server should grow the buffer as bytes actually arrive.
func TestBreak4DeclaredLengthAllocatesBeforeBody(t *testing.T) {
	e := newPermEnv(t)
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("reader:r-pass"))

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const conns = 8
	const declared = 16 << 20 // the default body limit
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", u.Host)
		require.NoError(t, err)
		cs = append(cs, c)
		_, err = fmt.Fprintf(c, "POST /produce/orders HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n{", auth, declared)
		require.NoError(t, err)
	}
	time.Sleep(500 * time.Millisecond)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d MiB for %d requests that sent 1 body byte each", grown>>20, conns)
	assert.Less(t, grown, int64(conns)<<20,
		"each stalled request with a declared 16 MiB body pins ~16 MiB of heap before any body byte arrives")
}
