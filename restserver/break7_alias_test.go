package restserver_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// The records a produce hands to the backend keep their bytes while the
// pooled buffer their body was read into carries later bodies: topic, key,
// value and headers, on the fast decoder and on encoding/json's path
// (a case-folded field name sends a body there), under concurrent traffic.
func TestBreak7ProducedRecordsNotAliased(t *testing.T) {
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("alias-a", 1), memory.WithTopic("alias-b", 1)}})
	const perWriter, writers = 40, 4
	body := func(w, i int) (topic, key, value, hval, json string) {
		c := string(rune('a' + (w*perWriter+i)%26))
		topic = "alias-a"
		if w%2 == 1 {
			topic = "alias-b"
		}
		key = fmt.Sprintf("key-%d-%d-%s", w, i, strings.Repeat(c, 20))
		value = fmt.Sprintf("value-%d-%d-%s", w, i, strings.Repeat(c, 200+i))
		hval = fmt.Sprintf("hdr-%d-%d-%s", w, i, strings.Repeat(c, 50))
		field := "value"
		if i%3 == 0 {
			field = "Value" // encoding/json's path
		}
		json = fmt.Sprintf(`{"topic":%q,"key":%q,%q:%q,"headers":[{"key":"h","value":%q},{"key":"rpc-v","value":"1"}]}`,
			topic, key, field, value, hval)
		return
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				_, _, _, _, b := body(w, i)
				r := e.req(http.MethodPost, "/produce", b)
				if r.status != http.StatusOK {
					t.Errorf("produce %d/%d: %d %s", w, i, r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	// More bodies of other bytes through the same pool (one topic: each
	// new topic costs a creation, about a quarter of a second on Kafka).
	for i := range 200 {
		e.req(http.MethodPost, "/produce", fmt.Sprintf(`{"topic":"alias-zz","value":%q}`, strings.Repeat(string(rune('#'+i%40)), 300+i)))
		e.req(http.MethodPost, "/fetch", `{"topic":"alias-a","partition":0,"offset":0,"timeout":0}`)
	}
	runtime.GC()
	want := map[string][4]string{}
	for w := range writers {
		for i := range perWriter {
			topic, key, value, hval, _ := body(w, i)
			want[key] = [4]string{topic, key, value, hval}
		}
	}
	for _, topic := range []string{"alias-a", "alias-b"} {
		msgs, err := e.backend.Fetch(t.Context(), transport.Offset{Topic: topic}, 1000)
		require.NoError(t, err)
		require.Len(t, msgs, perWriter*writers/2)
		for _, m := range msgs {
			w, ok := want[m.Key]
			require.True(t, ok, "a record's key changed: %q", m.Key)
			require.Equal(t, w[0], m.Topic)
			require.Equal(t, w[2], string(m.Value), "key %s", m.Key)
			require.Equal(t, []transport.Header{{Key: "h", Value: w[3]}, {Key: "rpc-v", Value: "1"}}, m.Headers, "key %s", m.Key)
		}
	}
}

// A body that declares the largest length allowed and sends a little
// before the client half-closes costs the server about what arrived, not
// what was declared: a header alone cannot make it allocate megabytes.
func TestBreak7HugeDeclaredLengthSmallBody(t *testing.T) {
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("huge", 1)}})
	sent := `{"topic":"huge","value":"` + strings.Repeat("x", 1000)
	const conns = 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, path := range []string{"/produce", "/fetch", "/consume/g/i"} {
		for range conns {
			st, body := rawShortBody(t, e.url, path, sent, int(restserver.DefaultMaxBodyBytes))
			require.Equal(t, http.StatusBadRequest, st, body)
			require.Contains(t, body, "reading request body")
		}
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d requests declaring %d MiB each: %d KiB allocated in all", 3*conns, restserver.DefaultMaxBodyBytes>>20, alloc>>10)
	require.Less(t, alloc, uint64(3*conns)<<20, "the server allocated for the declared length")
	require.Equal(t, int64(0), e.latest("huge", 0), "nothing produced")
}

// A declared length shorter than the body: the server reads the declared
// bytes only (the rest is the next request on the connection, to
// net/http), so a body cut inside its JSON is a clear 400 that produces
// nothing; a chunked body past the limit is a 413 that produces nothing.
func TestBreak7DeclaredLengthShorterThanBody(t *testing.T) {
	e := newEnv(t, envConfig{broker: []memory.Option{memory.WithTopic("lies", 1)}})
	body := `{"topic":"lies","value":"abcdef"}`
	for _, path := range []string{"/produce", "/produce/lies"} {
		r := rawLongBody(t, e.url, path, body, len(body)-4)
		require.Equal(t, http.StatusBadRequest, r.status, r.body)
		require.Contains(t, r.body, "JSON")
	}
	require.Equal(t, int64(0), e.latest("lies", 0), "a cut body produced")

	big := `{"topic":"lies","value":"` + strings.Repeat("v", int(restserver.DefaultMaxBodyBytes)) + `"}`
	r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/produce", io.MultiReader(strings.NewReader(big)))
	require.NoError(t, err)
	r.SetBasicAuth(testUser, testPass)
	resp, err := e.client.Do(r)
	if err == nil { // the server may close the connection before the client sent it all
		resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	}
	require.Equal(t, int64(0), e.latest("lies", 0), "an oversize chunked body produced")
}

// rawLongBody sends a POST declaring declared bytes but sending all of
// sent, and returns the first answer.
func rawLongBody(t *testing.T, base, path, sent string, declared int) reply {
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
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: string(b)}
}
