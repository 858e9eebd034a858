package upstash

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Attacks on the client's fast paths: pooled answer buffers, its own gzip
// decompression, and the lone produce sent by the caller's goroutine.

// The records of one consume answer keep their bytes while later answers
// are read into the pooled buffer it was read into.
func TestBreak7AnswerBufferNotAliased(t *testing.T) {
	var n atomic.Int64
	answer := func(i int64) string {
		c := byte('a' + i%26)
		v := strings.Repeat(string(c), 300)
		return fmt.Sprintf(`[{"topic":"topic-%c","partition":0,"offset":%d,"timestamp":1,"key":"key-%c%s","value":"%s","headers":[{"key":"h-%c","value":"%s"}]}]`,
			c, i, c, v[:40], v, c, v[:100])
	}
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		body := answer(n.Add(1) - 1)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write([]byte(body))
	})
	tr := hostileTransport(t, s)
	var kept []transport.Message
	for range 60 {
		var ans messagesAnswer
		require.NoError(t, tr.call(t.Context(), request{method: http.MethodPost, path: "/fetch", body: []byte(`{}`)}, &ans))
		require.Len(t, ans.msgs, 1)
		kept = append(kept, ans.msgs[0])
	}
	var wg sync.WaitGroup // more traffic through the pool, from other goroutines
	for range 4 {
		wg.Go(func() {
			for range 30 {
				var ans messagesAnswer
				_ = tr.call(t.Context(), request{method: http.MethodPost, path: "/fetch", body: []byte(`{}`)}, &ans)
			}
		})
	}
	wg.Wait()
	runtime.GC()
	for i, m := range kept {
		c := byte('a' + i%26)
		v := strings.Repeat(string(c), 300)
		require.Equal(t, "topic-"+string(c), m.Topic, "record %d", i)
		require.Equal(t, "key-"+string(c)+v[:40], m.Key, "record %d", i)
		require.Equal(t, v, string(m.Value), "record %d", i)
		require.Len(t, m.Headers, 1)
		require.Equal(t, transport.Header{Key: "h-" + string(c), Value: v[:100]}, m.Headers[0], "record %d", i)
	}
}

// A gzip bomb (a small compressed answer of 64 MiB of zeros) is inflated
// no further than the answer's limit: a clear error, little memory. (A
// consume or fetch answer may be 256 MiB, inflated or not: that limit is
// the bound, as it was when net/http inflated answers.)
func TestBreak7GzipBomb(t *testing.T) {
	var bomb bytes.Buffer
	zw, err := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	require.NoError(t, err)
	zero := make([]byte, 1<<20)
	for range 64 {
		_, _ = zw.Write(zero)
	}
	require.NoError(t, zw.Close())
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", fmt.Sprint(bomb.Len()))
		_, _ = w.Write(bomb.Bytes())
	})
	tr := hostileTransport(t, s, WithoutRetry())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "response over")
	var ans messagesAnswer
	err = tr.call(t.Context(), request{method: http.MethodPost, path: "/fetch", body: []byte(`{}`), limit: 1 << 20, noRetry: true}, &ans)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "response over")
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d KiB reading two bombs of %d KiB (64 MiB inflated)", alloc>>10, bomb.Len()>>10)
	assert.Less(t, alloc, uint64(16<<20), "the client inflated the bomb past its limit")
}

// A Content-Encoding that lies is a clear error, never a panic or a
// success with garbage: gzip on a plain body, a gzip body declared in a
// coding the client did not ask for (passed through as net/http does, so
// its bytes are not JSON).
func TestBreak7WrongContentEncoding(t *testing.T) {
	plain := []byte(`[{"topic":"t","partition":0,"offset":41,"timestamp":1}]`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(plain)
	require.NoError(t, zw.Close())
	for _, tc := range []struct {
		ce   string
		body []byte
		ok   bool
	}{
		{"gzip", plain, false}, {"GZIP", plain, false}, {"br", zipped.Bytes(), false},
		{"gzip, deflate", zipped.Bytes(), false}, {"identity", plain, true}, {"Gzip", zipped.Bytes(), true},
	} {
		t.Run(tc.ce, func(t *testing.T) {
			s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", tc.ce)
				_, _ = w.Write(tc.body)
			})
			tr := hostileTransport(t, s, WithoutRetry())
			out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, int64(41), out[0].Offset)
				return
			}
			require.Error(t, err, "a body that is not in its declared coding was taken: %+v", out)
		})
	}
}

// A lone produce (sent by the caller's goroutine) whose context ends while
// its request is in flight returns at once, says the records may have been
// appended, leaves no goroutine behind, and the producer works afterwards,
// also for a call queued behind it.
func TestBreak7LoneProduceCancelledInFlight(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int64
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then net/http sees the client go
		if requests.Add(1) == 1 {
			select { // the first request hangs until its client gives up
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		_, _ = w.Write([]byte(`[{"topic":"t","partition":0,"offset":7,"timestamp":1}]`))
	})
	defer close(release)
	tr := hostileTransport(t, s)
	for _, cause := range []string{"cancel", "deadline"} {
		requests.Store(0)
		t.Run(cause, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			if cause == "deadline" {
				ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
			}
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte("lone")})
				errc <- err
			}()
			require.Eventually(t, func() bool { return requests.Load() == 1 }, 5*time.Second, time.Millisecond)
			// A call arriving meanwhile queues behind the lone one.
			queued := make(chan error, 1)
			go func() {
				out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("queued")})
				if err == nil && out[0].Offset != 7 {
					err = fmt.Errorf("offset %d", out[0].Offset)
				}
				queued <- err
			}()
			require.Eventually(t, func() bool {
				tr.producer.mu.Lock()
				defer tr.producer.mu.Unlock()
				return len(tr.producer.queue) == 1
			}, 5*time.Second, time.Millisecond, "the second call queued")
			start := time.Now()
			cancel()
			select {
			case err := <-errc:
				require.Error(t, err)
				assert.True(t, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded), "%v", err)
				assert.Contains(t, err.Error(), "may have been appended")
				assert.Less(t, time.Since(start), 2*time.Second)
			case <-time.After(5 * time.Second):
				t.Fatal("the lone produce did not return after its context ended")
			}
			select {
			case err := <-queued:
				require.NoError(t, err, "the call queued behind the cancelled one")
			case <-time.After(5 * time.Second):
				t.Fatal("the queued produce never finished")
			}
			out, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("after")})
			require.NoError(t, err)
			assert.Equal(t, int64(7), out[0].Offset)
		})
	}
}

// An answer read to its declared end without a drain (plain or gzip,
// small or large) leaves its connection reusable: sequential calls share
// one connection.
func TestBreak7ConnectionReusedWithoutDrain(t *testing.T) {
	for _, gz := range []bool{false, true} {
		for _, size := range []int{1, 200} { // records per answer: small and past net/http's 4 KiB buffers
			t.Run(fmt.Sprintf("gzip=%v/records=%d", gz, size), func(t *testing.T) {
				var conns atomic.Int64
				s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var b strings.Builder
					b.WriteByte('[')
					for i := range size {
						if i > 0 {
							b.WriteByte(',')
						}
						if strings.HasSuffix(r.URL.Path, "/produce") {
							fmt.Fprintf(&b, `{"topic":"t","partition":0,"offset":%d,"timestamp":1}`, i)
						} else {
							fmt.Fprintf(&b, `{"topic":"t","partition":0,"offset":%d,"timestamp":1,"key":"","value":"%s","headers":[]}`, i, strings.Repeat("v", 30))
						}
					}
					b.WriteByte(']')
					body := []byte(b.String())
					if gz {
						var z bytes.Buffer
						zw := gzip.NewWriter(&z)
						_, _ = zw.Write(body)
						_ = zw.Close()
						body = z.Bytes()
						w.Header().Set("Content-Encoding", "gzip")
					}
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
					_, _ = w.Write(body)
				}))
				s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
					if st == http.StateNew {
						conns.Add(1)
					}
				}
				s.Start()
				t.Cleanup(s.Close)
				tr := hostileTransport(t, s)
				msgs := make([]transport.Message, size)
				for i := range msgs {
					msgs[i] = transport.Message{Topic: "t", Value: []byte("v")}
				}
				for range 20 {
					_, err := tr.Produce(t.Context(), msgs...)
					require.NoError(t, err)
					var ans messagesAnswer
					require.NoError(t, tr.call(t.Context(), request{method: http.MethodPost, path: "/fetch", body: []byte(`{}`)}, &ans))
					require.Len(t, ans.msgs, size)
				}
				assert.Equal(t, int64(1), conns.Load(), "40 sequential calls opened more than one connection")
			})
		}
	}
}

// Close while a lone produce is in flight on the caller's goroutine: Close
// waits for it up to its close timeout, as for a flusher's request, then
// cancels it; the produce fails saying the transport closed, and a later
// produce is refused as closed.
func TestBreak7CloseDuringLoneProduce(t *testing.T) {
	var requests atomic.Int64
	s := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then net/http sees the client go
		requests.Add(1)
		<-r.Context().Done() // hangs until the client gives up
	})
	tr, err := New(WithURL(s.URL), WithCredentials("user", "secret"), fastBackoff, WithCloseTimeout(300*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	errc := make(chan error, 1)
	go func() {
		_, err := tr.Produce(context.Background(), transport.Message{Topic: "t", Value: []byte("v")})
		errc <- err
	}()
	require.Eventually(t, func() bool { return requests.Load() == 1 }, 5*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return within its close timeout while a lone produce was in flight")
	}
	select {
	case err := <-errc:
		require.ErrorIs(t, err, transport.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the lone produce did not end at Close")
	}
	_, err = tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte("v")})
	require.ErrorIs(t, err, transport.ErrClosed)
}
