package restserver_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Produce bodies past 64 KiB are read into pooled buffers too: concurrent
// big batches, each of distinct records, must each be stored as sent (a
// buffer handed to a second request while the first was still decoding
// would mix them), and a body shorter than its declared length is still a
// clear 400 that leaves the buffer reusable.
func TestBigProduceBodiesPooledNotMixed(t *testing.T) {
	e := newEnv(t, envConfig{})
	e.createTopic("big", 1)
	const (
		senders = 6
		rounds  = 4
		records = 200 // about 200 × 600 bytes: 120 KB a body
	)
	value := func(s, r, i int) string {
		return fmt.Sprintf("s%d-r%d-i%d-%s", s, r, i, strings.Repeat(string(rune('a'+s)), 560))
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for r := range rounds {
				var b strings.Builder
				b.WriteByte('[')
				for i := range records {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"topic":"big","value":%q}`, value(s, r, i))
				}
				b.WriteByte(']')
				require.Greater(t, b.Len(), 64<<10)
				got := e.req(http.MethodPost, "/produce", b.String())
				if !assertOK(t, got) {
					return
				}
				var meta []struct {
					Offset int64 `json:"offset"`
				}
				require.NoError(t, json.Unmarshal([]byte(got.body), &meta))
				require.Len(t, meta, records)
				// Read the batch back: every record is this sender's.
				for i := 0; i < records; i += 50 {
					body := e.ok(http.MethodPost, "/fetch", fmt.Sprintf(`{"topic":"big","partition":0,"offset":%d}`, meta[i].Offset))
					var recs []struct {
						Value string `json:"value"`
					}
					require.NoError(t, json.Unmarshal([]byte(body), &recs))
					require.NotEmpty(t, recs)
					require.Equal(t, value(s, r, i), recs[0].Value)
				}
			}
		})
	}
	wg.Wait()

	// A big declared length with a short body: refused, the server goes on.
	short := `[{"topic":"big","value":"` + strings.Repeat("x", 70<<10) + `"}]`
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = fmt.Fprintf(conn, "POST /produce HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		u.Host, base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass)), len(short)+1000, short)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	e.ok(http.MethodPost, "/produce", `{"topic":"big","value":"after"}`)
}

func assertOK(t *testing.T, r reply) bool {
	t.Helper()
	return assertStatus(t, r, http.StatusOK)
}

func assertStatus(t *testing.T, r reply, status int) bool {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
		return false
	}
	return true
}
