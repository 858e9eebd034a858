package restserver_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// Break 8: hostile POST /fetch bodies carrying records ("produce"). The
// invariant every case checks: the answer tells the truth about the
// records. Kafka-Produced, when present, lists exactly the records that
// were written (once each); when absent, nothing was written. And the
// server keeps serving.

// requireTruthful checks r against what "out" holds now, outBefore being
// its end offset before the request: as many records written as
// Kafka-Produced lists (none without it), at the offsets it names.
func requireTruthful(t *testing.T, e *env, r reply, outBefore int64) []metadata {
	t.Helper()
	written := e.latest("out", 0) - outBefore
	v := r.header.Values(restserver.ProducedHeader)
	if len(v) == 0 {
		require.Zero(t, written, "no Kafka-Produced, yet %d records were written (status %d, body %s)", written, r.status, r.body)
		return nil
	}
	require.Len(t, v, 1)
	meta := decode[[]metadata](t, v[0])
	require.Len(t, meta, int(written), "Kafka-Produced lists %d records, %d were written (status %d, body %s)", len(meta), written, r.status, r.body)
	for i, m := range meta {
		assert.Equal(t, outBefore+int64(i), m.Offset, "record %d", i)
	}
	return meta
}

// requireServing checks the server still answers a plain fetch.
func requireServing(t *testing.T, e *env) {
	t.Helper()
	got := decode[[]consumed](t, e.ok("POST", "/fetch", fetchIn(0, 0, "")))
	require.Equal(t, []string{"request"}, values(got))
}

func TestBreak8FetchCarryHostileFetchParts(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t, restserver.WithFetchMaxPartitions(4))
	const rec = `,"produce":[{"topic":"out","value":"a"},{"topic":"out","value":"b"}]}`
	tpo := func(parts string) string { return `{"timeout":0,"topicPartitionOffsets":[` + parts + `]` + rec }
	for _, c := range []struct {
		name   string
		body   string
		status int
		wrote  bool
		read   []string // nil: not checked
	}{
		{"negative offset", tpo(`{"topic":"in","partition":0,"offset":-1}`), 400, false, nil},
		{"min int64 offset", tpo(`{"topic":"in","partition":0,"offset":-9223372036854775808}`), 400, false, nil},
		{"offset past int64", tpo(`{"topic":"in","partition":0,"offset":9223372036854775808}`), 400, false, nil},
		{"fractional offset", tpo(`{"topic":"in","partition":0,"offset":1.5}`), 400, false, nil},
		{"string offset", tpo(`{"topic":"in","partition":0,"offset":"0"}`), 400, false, nil},
		{"negative partition", tpo(`{"topic":"in","partition":-1,"offset":0}`), 400, false, nil},
		{"partition past int32", tpo(`{"topic":"in","partition":2147483648,"offset":0}`), 400, false, nil},
		{"no topic in the list", tpo(`{"partition":0,"offset":0}`), 400, false, nil},
		{"empty list", tpo(``), 400, false, nil},
		{"null list", `{"timeout":0,"topicPartitionOffsets":null` + rec, 400, false, nil},
		{"too many partitions", tpo(`{"topic":"in","partition":0,"offset":0},{"topic":"in","partition":1,"offset":0},` +
			`{"topic":"in","partition":2,"offset":0},{"topic":"in","partition":3,"offset":0},{"topic":"in","partition":4,"offset":0}`), 400, false, nil},
		{"bad timeout type", `{"topic":"in","timeout":"5"` + rec, 400, false, nil},
		{"negative timeout", `{"topic":"in","timeout":-0.5` + rec, 400, false, nil},
		{"timeout in the query", `{"topic":"in"` + rec, 200, true, []string{"request"}}, // the query has none: the default, but records are there
		{"absent partition and offset", `{"topic":"in","timeout":0` + rec, 200, true, []string{"request"}},
		{"huge offset", tpo(`{"topic":"in","partition":0,"offset":9223372036854775807}`), 200, true, []string{}},
		{"offset past the end", tpo(`{"topic":"in","partition":0,"offset":1000000}`), 200, true, []string{}},
		{"huge timeout", `{"topic":"in","timeout":1e300` + rec, 200, true, []string{"request"}},
		{"same partition twice", tpo(`{"topic":"in","partition":0,"offset":5},{"topic":"in","partition":0,"offset":0}`), 200, true, []string{"request"}},
		// Checked only once the records are written: the answer says so.
		{"partition past the topic's", tpo(`{"topic":"in","partition":7,"offset":0}`), 0, true, nil},
		{"unknown fetch topic", tpo(`{"topic":"nope","partition":0,"offset":0}`), 404, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.latest("out", 0)
			r := e.req("POST", "/fetch", c.body)
			if c.status != 0 {
				require.Equal(t, c.status, r.status, r.body)
			}
			meta := requireTruthful(t, e, r, before)
			assert.Equal(t, c.wrote, meta != nil, "written: status %d, body %s", r.status, r.body)
			if r.status != http.StatusOK {
				requireErrorBody(t, r, r.status)
			} else if c.read != nil {
				assert.Equal(t, c.read, values(decode[[]consumed](t, r.body)))
			}
			assert.Equal(t, restserver.CarryValue, r.header.Get(restserver.CarryHeader))
			requireServing(t, e)
		})
	}
}

// A bad ?timeout= (read when the body has none) is refused before the
// records are written; a good one is taken.
func TestBreak8FetchCarryQueryTimeout(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	body := `{"topic":"in","partition":0,"offset":1,"produce":[{"topic":"out","value":"x"}]}`
	for _, q := range []string{"abc", "-1", "NaN", "0x10", "1e999"} {
		before := e.latest("out", 0)
		r := e.req("POST", "/fetch?timeout="+url.QueryEscape(q), body)
		requireErrorBody(t, r, http.StatusBadRequest)
		assert.Nil(t, requireTruthful(t, e, r, before), "timeout %q", q)
	}
	before := e.latest("out", 0)
	r := e.req("POST", "/fetch?timeout=0", body)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Len(t, requireTruthful(t, e, r, before), 1)
	assert.Equal(t, "[]", r.body)
}

// Duplicate or odd "produce" keys: the fast decoder and encoding/json (the
// fallback, taken here by naming topicPartitionOffsets twice) agree on
// which records are produced, and the answer tells the truth.
func TestBreak8FetchCarryDuplicateKeys(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	const fast = `{"topic":"in","partition":0,"offset":0,"timeout":0,`
	const slow = `{"topicPartitionOffsets":[{"topic":"in","partition":0,"offset":0}],"topicPartitionOffsets":[{"topic":"in","partition":0,"offset":0}],"timeout":0,`
	for _, c := range []struct {
		name, fields string
		want         []string // written, in order; nil: nothing, no Kafka-Produced
	}{
		{"last of two wins", `"produce":[{"topic":"out","value":"first"}],"produce":[{"topic":"out","value":"second"}]`, []string{"second"}},
		{"null after records", `"produce":[{"topic":"out","value":"first"}],"produce":null`, nil},
		{"records after null", `"produce":null,"produce":{"topic":"out","value":"second"}`, []string{"second"}},
		{"other case", `"Produce":[{"topic":"out","value":"cased"}]`, []string{"cased"}},
		{"both cases", `"produce":[{"topic":"out","value":"lower"}],"PRODUCE":[{"topic":"out","value":"upper"}]`, []string{"upper"}},
	} {
		for _, path := range []struct{ name, prefix string }{{"fast", fast}, {"encoding/json", slow}} {
			t.Run(c.name+"/"+path.name, func(t *testing.T) {
				before := e.latest("out", 0)
				r := e.req("POST", "/fetch", path.prefix+c.fields+`}`)
				require.Equal(t, http.StatusOK, r.status, r.body)
				meta := requireTruthful(t, e, r, before)
				require.Len(t, meta, len(c.want))
				if c.want != nil {
					got := decode[[]consumed](t, e.ok("POST", "/fetch",
						`{"topic":"out","partition":0,"offset":`+strconv.FormatInt(before, 10)+`,"timeout":0}`))
					assert.Equal(t, c.want, values(got))
				}
				assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, r.body)))
			})
		}
	}
}

// Encoding tricks: a gzip body, a body declared as something else, a
// chunked body, a BOM, trailing garbage. Refused ones write nothing; the
// chunked one is produced once.
func TestBreak8FetchCarryEncodings(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	body := fetchIn(0, 0, `,"produce":[{"topic":"out","value":"x"}]`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(body))
	require.NoError(t, zw.Close())

	send := func(t *testing.T, rd io.Reader, length int64, hdr ...string) reply {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/fetch", rd)
		require.NoError(t, err)
		req.ContentLength = length
		req.SetBasicAuth(testUser, testPass)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	for _, c := range []struct {
		name   string
		send   func(t *testing.T) reply
		status int
		wrote  bool
	}{
		{"gzip", func(t *testing.T) reply {
			return send(t, bytes.NewReader(gz.Bytes()), int64(gz.Len()), "Content-Encoding", "gzip")
		}, 400, false},
		{"BOM", func(t *testing.T) reply {
			b := "\xef\xbb\xbf" + body
			return send(t, strings.NewReader(b), int64(len(b)))
		}, 400, false},
		{"trailing garbage", func(t *testing.T) reply {
			b := body + ` {"produce":[{"topic":"out","value":"y"}]}`
			return send(t, strings.NewReader(b), int64(len(b)))
		}, 400, false},
		{"two bodies in one", func(t *testing.T) reply {
			b := body + body
			return send(t, strings.NewReader(b), int64(len(b)))
		}, 400, false},
		{"NUL inside", func(t *testing.T) reply {
			b := strings.Replace(body, `"x"`, "\"x\x00\"", 1)
			return send(t, strings.NewReader(b), int64(len(b)))
		}, 400, false},
		{"chunked", func(t *testing.T) reply {
			return send(t, io.MultiReader(strings.NewReader(body[:10]), strings.NewReader(body[10:])), -1)
		}, 200, true},
		{"form content type", func(t *testing.T) reply {
			return send(t, strings.NewReader(body), int64(len(body)), "Content-Type", "application/x-www-form-urlencoded")
		}, 200, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.latest("out", 0)
			r := c.send(t)
			require.Equal(t, c.status, r.status, r.body)
			meta := requireTruthful(t, e, r, before)
			assert.Equal(t, c.wrote, meta != nil)
			requireServing(t, e)
		})
	}
}

// rawConn opens a connection to e and writes a carried fetch's request
// line and headers for a body of n bytes.
func rawConn(t *testing.T, e *env, n int) net.Conn {
	t.Helper()
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	require.NoError(t, err)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	_, err = fmt.Fprintf(c, "POST /fetch HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", auth, n)
	require.NoError(t, err)
	return c
}

// A client that leaves after its headers, after part of its body, or after
// all of it without reading the answer: nothing written unless the body
// arrived whole, then once at most; the server keeps serving.
func TestBreak8FetchCarryClientLeaves(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	body := fetchIn(1, 5000, `,"produce":[{"topic":"out","value":"x"},{"topic":"out","value":"y"}]`)
	for _, c := range []struct {
		name string
		sent int
	}{{"after the headers", 0}, {"after part of the body", len(body) / 2}, {"one byte short", len(body) - 1}} {
		t.Run(c.name, func(t *testing.T) {
			before := e.latest("out", 0)
			conn := rawConn(t, e, len(body))
			_, err := io.WriteString(conn, body[:c.sent])
			require.NoError(t, err)
			require.NoError(t, conn.Close())
			// The server notices the close when it reads: a plain
			// request afterwards is served, and nothing was written.
			requireServing(t, e)
			assert.Equal(t, before, e.latest("out", 0), "a body that never arrived whole wrote nothing")
		})
	}
	t.Run("after the whole body", func(t *testing.T) {
		before := e.latest("out", 0)
		conn := rawConn(t, e, len(body))
		_, err := io.WriteString(conn, body)
		require.NoError(t, err)
		// Wait for the headers, then leave during the long poll.
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		meta := decode[[]metadata](t, resp.Header.Get(restserver.ProducedHeader))
		require.Len(t, meta, 2)
		require.NoError(t, conn.Close())
		requireServing(t, e)
		assert.Equal(t, before+2, e.latest("out", 0), "written once")
	})
}

// Slow-loris: a carried fetch whose body trickles in past the read
// timeout is cut off (408 or a closed connection), nothing written; the
// server keeps serving others meanwhile.
func TestBreak8FetchCarrySlowBody(t *testing.T) {
	t.Parallel()
	kafkaDiffers(t, "served with Serve over the embedded broker only")
	s := resttest.Start(t, resttest.Config{
		Broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
		Server: []restserver.Option{restserver.WithCredentials(testUser, testPass), restserver.WithMaxTimeout(300 * time.Millisecond),
			restserver.WithTimeouts(restserver.Timeouts{ReadHeader: 500 * time.Millisecond, Read: time.Second, Write: time.Second})},
		Serve: true,
	})
	e := &env{t: t, broker: s.Broker, url: s.URL, client: &http.Client{}, backend: restserver.NewMemoryBackend(s.Broker)}
	t.Cleanup(e.client.CloseIdleConnections)
	e.ok("POST", "/produce/in", `{"value":"request"}`)

	body := fetchIn(0, 0, `,"produce":[{"topic":"out","value":"slow"}]`)
	conn := rawConn(t, e, len(body))
	defer conn.Close()
	done := make(chan string, 1)
	go func() {
		rd := bufio.NewReader(conn)
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			done <- "closed: " + err.Error()
			return
		}
		_ = resp.Body.Close()
		done <- strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get(restserver.ProducedHeader)
	}()
	var outcome string
	for i := 0; i < len(body) && outcome == ""; i++ {
		if _, err := conn.Write([]byte{body[i]}); err != nil {
			break // the server closed it
		}
		select {
		case outcome = <-done:
		case <-time.After(100 * time.Millisecond):
		}
		if i == 3 {
			requireServing(t, e) // others are served while it trickles
		}
	}
	if outcome == "" {
		select {
		case outcome = <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("no answer to the slow body")
		}
	}
	t.Logf("slow body: %s", outcome)
	assert.False(t, strings.HasPrefix(outcome, "200"), "a body that never arrived in time was served: %s", outcome)
	assert.Equal(t, int64(0), e.latest("out", 0), "nothing of the slow body is written")
	requireServing(t, e)
}

// Many clients carrying records at once, each with its own fetch: every
// record written exactly once, each answer naming the offsets its own
// records got (the log holds that client's values, keys and headers there,
// intact after the pooled bodies they came in were reused).
func TestBreak8FetchCarryConcurrent(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	const clients, each = 16, 20
	var wg sync.WaitGroup
	answers := make([][]metadata, clients*each)
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				n := c*each + i
				v := func(j int) string { return fmt.Sprintf("%d-%d", n, j) }
				rec := func(j int) string {
					return `{"topic":"out","value":"` + v(j) + `","key":"k` + v(j) + `","headers":[{"key":"h","value":"h` + v(j) + `"}]}`
				}
				body := fetchIn(0, 0, `,"produce":[`+rec(0)+`,`+rec(1)+`]`)
				r := e.req("POST", "/fetch", body)
				if !assert.Equal(t, http.StatusOK, r.status, r.body) {
					return
				}
				answers[n] = decode[[]metadata](t, r.header.Get(restserver.ProducedHeader))
				assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, r.body)))
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(2*clients*each), e.latest("out", 0), "every record once")
	all := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"out","partition":0,"offset":0,"timeout":0}`))
	for len(all) < 2*clients*each {
		more := decode[[]consumed](t, e.ok("POST", "/fetch", `{"topic":"out","partition":0,"offset":`+strconv.Itoa(len(all))+`,"timeout":0}`))
		require.NotEmpty(t, more)
		all = append(all, more...)
	}
	for n, meta := range answers {
		require.Len(t, meta, 2, "request %d", n)
		for j, m := range meta {
			// The pooled request bodies are reused at once: a record that
			// kept any of its body's bytes would show another's.
			v := fmt.Sprintf("%d-%d", n, j)
			got := all[m.Offset]
			assert.Equal(t, v, got.Value, "request %d record %d at offset %d", n, j, m.Offset)
			assert.Equal(t, "k"+v, got.Key)
			assert.Equal(t, []header{{Key: "h", Value: "h" + v}}, got.Headers)
		}
	}
}

// FuzzBreak8FetchCarryTruthful fuzzes POST /fetch bodies carrying records
// and checks what FuzzFetchRequest does not: Kafka-Produced, when present,
// names exactly the records the request wrote, partition by partition
// (each once, at offsets that were free before it); when absent, the
// request wrote nothing. The answer's other properties are checkAnswer's.
func FuzzBreak8FetchCarryTruthful(f *testing.F) {
	e := newFuzzEnv(f)
	for _, s := range []string{
		`{"topic":"t","partition":0,"offset":0,"timeout":0,"produce":[{"topic":"u","value":"x"}]}`,
		`{"topic":"t","produce":{"topic":"t","value":"x","headers":[{"key":"k","value":"v"}]}}`,
		`{"topic":"t","produce":[{"topic":"t","value":"x","partition":1},{"topic":"u","value":"y"},{"topic":"t","value":"z"}]}`,
		`{"topic":"t","produce":[]}`, `{"topic":"t","produce":null}`, `{"topic":"t","produce":[{"topic":"nope","value":"x"}]}`,
		`{"topic":"nope","produce":[{"topic":"t","value":"x"}]}`, `{"topic":"t","partition":9,"produce":[{"topic":"t","value":"x"}]}`,
		`{"topic":"t","produce":[{"topic":"u","value":"x"}],"produce":[{"topic":"t","value":"y"}]}`,
		`{"topicPartitionOffsets":[{"topic":"t"}],"topicPartitionOffsets":[{"topic":"u"}],"produce":[{"topic":"u","value":"x"}]}`,
		`{"topic":"t","Produce":[{"topic":"u","value":"x"}],"produce":null}`, `{"topic":"t","produce":[{"topic":"u","value":"x","partition":3}]}`,
		`{"topic":"t","offset":-1,"produce":[{"topic":"u","value":"x"}]}`, `{"topic":"t","commit":[],"produce":[{"topic":"u","value":"x"}]}`,
	} {
		f.Add([]byte(s))
	}
	parts := []transport.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}, {Topic: "u", Partition: 0}}
	ends := func(t *testing.T) map[transport.TopicPartition]int64 {
		out := map[transport.TopicPartition]int64{}
		for _, tp := range parts {
			_, latest, err := e.broker.Offsets(tp.Topic, tp.Partition)
			require.NoError(t, err)
			out[tp] = latest
		}
		return out
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e.feed(t)
		before := ends(t)
		w := e.do(t, httptest.NewRequest("POST", "/fetch", bytes.NewReader(body)))
		after := ends(t)
		v := w.Header().Values(restserver.ProducedHeader)
		if len(v) == 0 {
			require.Equal(t, before, after, "no Kafka-Produced, yet records were written (status %d: %s)", w.Code, w.Body)
			return
		}
		require.Len(t, v, 1)
		var meta []metadata
		require.NoError(t, json.Unmarshal([]byte(v[0]), &meta), "Kafka-Produced: %s", v[0])
		named := map[transport.TopicPartition][]int64{}
		for _, m := range meta {
			tp := transport.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			named[tp] = append(named[tp], m.Offset)
		}
		for _, tp := range parts {
			offs := named[tp]
			require.Len(t, offs, int(after[tp]-before[tp]), "%v: Kafka-Produced names %v, %d records were written", tp, offs, after[tp]-before[tp])
			for i, off := range offs {
				require.Equal(t, before[tp]+int64(i), off, "%v: record %d", tp, i)
			}
			delete(named, tp)
		}
		require.Empty(t, named, "Kafka-Produced names partitions that do not exist")
	})
}
