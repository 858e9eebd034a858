//go:build linux

package main

// The abuse suite of issue 14: kafka-rest runs as a child process (this
// test binary re-executed, serving through run, as the real binary does)
// under GOMEMLIMIT and a hard memory watchdog, and is attacked over
// loopback with each finding of the issue, at sizes that blew the cap on
// the code before the fixes. After the attacks it must still answer
// quickly, have stayed under the cap, and stop cleanly on SIGTERM.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	abuseChildEnv = "KAFKA_REST_ABUSE_REPORT"   // the child's report file
	abuseArgsEnv  = "KAFKA_REST_ABUSE_ARGS"     // the child's kafka-rest arguments, JSON
	abuseHeapEnv  = "KAFKA_REST_ABUSE_HEAP_CAP" // bytes of Go heap past which the child dies
	abuseRSSEnv   = "KAFKA_REST_ABUSE_RSS_CAP"  // bytes of resident memory past which the child dies

	// abuseNoFile is the child's open file limit, soft and hard, as on a
	// host with a small one (finding 6 was found at 1,024).
	abuseNoFile = 256

	abuseUser = "abuse-admin"
	abusePass = "abuse-Pa55word-7"

	// abuseHeapCap is the child's hard cap on Go heap (live and garbage)
	// and stacks; GOMEMLIMIT is set below it. Run against the code before
	// each fix (limit flags left out), F1 and F4 (d8a680f^) and F2
	// (61cf41c^) each killed the child past this cap on their own.
	abuseHeapCap  = 256 << 20
	abuseMemLimit = "160MiB"
)

// abuseRSSCap is the hard cap on resident memory: the race detector's
// shadow memory multiplies it.
func abuseRSSCap() int64 {
	if raceEnabled {
		return 1536 << 20
	}
	return 320 << 20
}

// abuseReps is n repetitions of an attack, halved under the race detector
// (which makes the server about 5 times slower) to keep the suite under a
// minute.
func abuseReps(n int) int {
	if raceEnabled {
		return n / 2
	}
	return n
}

// abuseReport is what the child writes at exit, or when the watchdog kills
// it.
type abuseReport struct {
	PeakHeapBytes int64  `json:"peak_heap_bytes"` // highest sampled Go heap objects (live and garbage) and stacks
	PeakRSSBytes  int64  `json:"peak_rss_bytes"`  // VmHWM: the kernel's peak resident set
	Samples       int    `json:"samples"`
	Breach        string `json:"breach,omitempty"` // why the watchdog killed the child
	RunError      string `json:"run_error,omitempty"`
}

// abuseChild serves kafka-rest with the arguments in the environment until
// SIGINT or SIGTERM, watched: past the heap or RSS cap it writes its report
// and exits 3.
func abuseChild(reportPath string) int {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(abuseArgsEnv)), &args); err != nil {
		fmt.Fprintln(os.Stderr, "abuse child: arguments:", err)
		return 2
	}
	lim := syscall.Rlimit{Cur: abuseNoFile, Max: abuseNoFile}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "abuse child: file limit:", err)
		return 2
	}
	heapCap, _ := strconv.ParseInt(os.Getenv(abuseHeapEnv), 10, 64)
	rssCap, _ := strconv.ParseInt(os.Getenv(abuseRSSEnv), 10, 64)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var mu sync.Mutex
	var rep abuseReport
	write := func() {
		b, _ := json.Marshal(rep)
		_ = os.WriteFile(reportPath, b, 0o600)
	}
	sample := func() (breach string) {
		heap := heapObjects()
		rss := vmHWM()
		mu.Lock()
		defer mu.Unlock()
		rep.Samples++
		rep.PeakHeapBytes = max(rep.PeakHeapBytes, heap)
		rep.PeakRSSBytes = max(rep.PeakRSSBytes, rss)
		switch {
		case heapCap > 0 && heap > heapCap:
			rep.Breach = fmt.Sprintf("heap %d MiB over the cap of %d MiB", heap>>20, heapCap>>20)
		case rssCap > 0 && rss > rssCap:
			rep.Breach = fmt.Sprintf("peak RSS %d MiB over the cap of %d MiB", rss>>20, rssCap>>20)
		}
		if rep.Breach != "" {
			write()
		}
		return rep.Breach
	}
	watchDone := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watchDone:
				return
			case <-tick.C:
				if b := sample(); b != "" {
					fmt.Fprintln(os.Stderr, "abuse child: watchdog:", b)
					os.Exit(3)
				}
			}
		}
	}()
	err := run(ctx, args, os.Stdout, os.Stderr)
	close(watchDone)
	if b := sample(); b != "" {
		return 3
	}
	mu.Lock()
	if err != nil {
		rep.RunError = err.Error()
	}
	write()
	mu.Unlock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka-rest:", err)
		return 1
	}
	return 0
}

// heapObjects is the bytes of Go heap objects, live or not yet collected,
// and of goroutine stacks (a goroutine per request entry shows there).
func heapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() + s[1].Value.Uint64())
}

// vmHWM is the process's peak resident set from /proc/self/status (0
// where there is no /proc).
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// abuseServer is a running child.
type abuseServer struct {
	t      *testing.T
	url    string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	report string
	client *http.Client
}

// startAbuseServer starts the child with args and waits (bounded) until it
// answers on its port.
func startAbuseServer(t *testing.T, args ...string) *abuseServer {
	t.Helper()
	return newAbuseChild(t, abuseHeapCap, args...).waitReady()
}

// newAbuseChild starts the child with args and the given heap cap.
func newAbuseChild(t *testing.T, heapCap int64, args ...string) *abuseServer {
	t.Helper()
	dir := t.TempDir()
	a, err := json.Marshal(append([]string{"--addr", "127.0.0.1:0"}, args...))
	require.NoError(t, err)
	s := &abuseServer{t: t, logs: &syncBuffer{}, exited: make(chan struct{}), report: filepath.Join(dir, "report.json"),
		client: &http.Client{Timeout: 30 * time.Second}}
	s.cmd = exec.Command(os.Args[0], "-test.run=^$")
	s.cmd.Env = append(os.Environ(),
		abuseChildEnv+"="+s.report, abuseArgsEnv+"="+string(a),
		abuseHeapEnv+"="+strconv.FormatInt(heapCap, 10), abuseRSSEnv+"="+strconv.FormatInt(abuseRSSCap(), 10),
		"GOMEMLIMIT="+abuseMemLimit,
		"KAFKA_REST_USERNAME="+abuseUser, "KAFKA_REST_PASSWORD="+abusePass)
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	require.NoError(t, s.cmd.Start())
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// waitReady waits (bounded) until the child's URL is logged and its port
// accepts a connection.
func (s *abuseServer) waitReady() *abuseServer {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := urlRE.FindStringSubmatch(s.logs.String()); m != nil {
			c, err := net.DialTimeout("tcp", strings.TrimPrefix(m[1], "http://"), time.Second)
			if err == nil {
				c.Close()
				s.url = m[1]
				break
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("kafka-rest exited at start: %v\n%s", s.cmd.ProcessState, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka-rest was not ready within 15 s\n%s", s.logs.String())
		}
	}
	return s
}

// on is s reporting to t (a subtest).
func (s *abuseServer) on(t *testing.T) *abuseServer {
	c := *s
	c.t = t
	return &c
}

// alive fails the test if the child has exited (the watchdog's report says
// why).
func (s *abuseServer) alive(what string) { s.aliveAfter(what, 0) }

// aliveAfter is alive, giving a dying child up to wait to be seen exited.
func (s *abuseServer) aliveAfter(what string, wait time.Duration) {
	s.t.Helper()
	select {
	case <-s.exited:
		b, _ := os.ReadFile(s.report)
		s.t.Fatalf("kafka-rest died during %s: %v\nreport: %s\nlog tail: %s", what, s.cmd.ProcessState, b, tail(s.logs.String(), 2000))
	case <-time.After(wait):
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// do sends an authenticated request (headers as name, value pairs) and
// returns the status and body.
func (s *abuseServer) do(method, path, body string, hdr ...string) (int, string) {
	s.t.Helper()
	r, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(s.t, err)
	r.SetBasicAuth(abuseUser, abusePass)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.client.Do(r)
	if err != nil {
		s.aliveAfter(method+" "+tail(path, 40), 2*time.Second)
		require.NoError(s.t, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, string(b)
}

// ok is do that must answer 200.
func (s *abuseServer) ok(method, path, body string, hdr ...string) string {
	s.t.Helper()
	status, b := s.do(method, path, body, hdr...)
	require.Equal(s.t, http.StatusOK, status, "%s %s: %s", method, tail(path, 60), tail(b, 300))
	return b
}

// records is a JSON array of n records like {"topic":...,"value":...}
// built by each.
func records(n int, each func(b *strings.Builder, i int)) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		each(&b, i)
	}
	b.WriteByte(']')
	return b.String()
}

type fetched struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

// TestAbuseWatchdogFires: the child's watchdog does kill it past its cap,
// with a report saying why, so that TestAbuseBinary's passing means the
// server stayed under the cap.
func TestAbuseWatchdogFires(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	s := newAbuseChild(t, 64<<10) // 64 KiB of heap: over it at once
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the watchdog did not kill the child within 15 s")
	}
	assert.Equal(t, 3, s.cmd.ProcessState.ExitCode(), s.logs.String())
	b, err := os.ReadFile(s.report)
	require.NoError(t, err)
	var rep abuseReport
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.Contains(t, rep.Breach, "over the cap of 0 MiB")
	assert.Contains(t, s.logs.String(), "watchdog")
}

// TestAbuseBinary runs the attacks of issue 14 (findings 1-8 and 14)
// against one kafka-rest child process under a memory cap. On the code
// before each fix: F1, F2 and F4 passed the heap cap (272, 257, 256 MiB);
// F3 and F5 got 200 where a 400 is due; F6's authenticated request failed
// (defbd91^); F14 got "negative session timeout -1ms" (d7f8e5f^).
func TestAbuseBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("the abuse suite starts a server process")
	}
	begin := time.Now()
	s := startAbuseServer(t,
		"--topics", "big,junk,keep,wide:1000,f7,f8,f14",
		"--fetch-max-bytes", "4194304",
		"--retention-records", "20000", "--retention-bytes", "8388608",
		"--fetch-max-partitions", "1000",
		"--max-topics", "6000",
		"--max-connections", "64", "--idle-timeout", "5s",
		"--failed-login-limit", "100000")
	const mb = 1 << 20

	t.Run("F1 big values fetched through one partition listed three times", func(t *testing.T) {
		s := s.on(t)
		// 8 x 1 MB of \x01, 6 bytes each when escaped: 48 MB of JSON in
		// the partition, 144 MB in the old answer (with its buffers, over
		// the cap); now one answer of at most 4 MiB of records.
		v := strings.Repeat(`\u0001`, mb-100)
		for range 8 {
			s.ok("POST", "/produce/big", `{"value":"`+v+`"}`)
		}
		s.alive("F1 produce")
		start := time.Now()
		body := s.ok("POST", "/fetch", `{"topicPartitionOffsets":[{"topic":"big","partition":0,"offset":0},`+
			`{"topic":"big","partition":0,"offset":0},{"topic":"big","partition":0,"offset":0}],"timeout":0}`)
		var got []fetched
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		assert.NotEmpty(t, got)
		assert.LessOrEqual(t, len(got), 5, "4 MiB cap; each record once")
		assert.Less(t, time.Since(start), 10*time.Second)
		s.alive("F1")
	})

	t.Run("F2 retention frees batches that a kept record shared", func(t *testing.T) {
		s := s.on(t)
		// Each request: 4 x 1 MB to junk (8 MiB retained) and 1 byte to
		// keep. The old code pinned every batch: 80 x 4 MB = 320 MB.
		v := strings.Repeat("j", mb-100)
		body := records(5, func(b *strings.Builder, i int) {
			if i == 4 {
				b.WriteString(`{"topic":"keep","value":"k"}`)
				return
			}
			b.WriteString(`{"topic":"junk","value":"` + v + `"}`)
		})
		for range abuseReps(80) {
			s.ok("POST", "/produce", body)
		}
		s.alive("F2")
	})

	t.Run("F3 one produce creating many topics is bounded", func(t *testing.T) {
		s := s.on(t)
		// Creation was quadratic: 10k topics took 3.1 s; past the cap
		// nothing is created.
		over := records(6001, func(b *strings.Builder, i int) { fmt.Fprintf(b, `{"topic":"x%05d","value":"v"}`, i) })
		start := time.Now()
		status, msg := s.do("POST", "/produce", over)
		assert.Equal(t, http.StatusBadRequest, status, msg)
		assert.Contains(t, msg, "6000")
		assert.Less(t, time.Since(start), 5*time.Second)
		assert.NotContains(t, s.ok("GET", "/topics", ""), `"x00000"`, "a rejected batch creates no topic")

		many := records(5000, func(b *strings.Builder, i int) { fmt.Fprintf(b, `{"topic":"t%05d","value":"v"}`, i) })
		start = time.Now()
		s.ok("POST", "/produce", many)
		took := time.Since(start)
		t.Logf("F3: 5000 topics created by one produce in %v", took)
		assert.Less(t, took, 10*time.Second)
		assert.Contains(t, s.ok("GET", "/topics", ""), `"t04999":1`)
	})

	t.Run("F4 fetch with many entries", func(t *testing.T) {
		s := s.on(t)
		// 300k entries (150k under race) over 1,000 partitions (13 MB): a
		// goroutine each took 525-675 MB; now merged to 1,000, waited on
		// by one.
		entries := records(abuseReps(300_000), func(b *strings.Builder, i int) {
			fmt.Fprintf(b, `{"topic":"wide","partition":%d,"offset":0}`, i%1000)
		})
		body := `{"topicPartitionOffsets":` + entries + `,"timeout":2000}`
		require.Less(t, len(body), 16<<20)
		var wg sync.WaitGroup
		errs := make(chan string, 2)
		start := time.Now()
		for range 2 {
			wg.Go(func() {
				status, b := s.do("POST", "/fetch", body)
				if status != http.StatusOK || b != "[]" {
					errs <- fmt.Sprintf("%d %s", status, tail(b, 200))
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error("F4:", e)
		}
		assert.Less(t, time.Since(start), 20*time.Second)

		tooMany := records(1001, func(b *strings.Builder, i int) { fmt.Fprintf(b, `{"topic":"t%05d","partition":0}`, i) })
		status, msg := s.do("POST", "/fetch", `{"topicPartitionOffsets":`+tooMany+`,"timeout":0}`)
		assert.Equal(t, http.StatusBadRequest, status, msg)
		s.alive("F4")
	})

	t.Run("F5 long group names and abandoned groups", func(t *testing.T) {
		s := s.on(t)
		// 300 groups of 900 KB names took 537 MB; now each is a 400.
		long := strings.Repeat("g", 900_000)
		for i := range abuseReps(100) {
			status, msg := s.do("POST", "/consume/"+long+strconv.Itoa(i)+"/i", `{"topic":"f7","timeout":0}`)
			require.Equal(t, http.StatusBadRequest, status, tail(msg, 200))
		}
		name := strings.Repeat("n", 240)
		for i := range abuseReps(200) {
			g := fmt.Sprintf("%s%05d", name, i)
			s.ok("POST", "/consume/"+g+"/"+g, `{"topic":"f7","timeout":0}`, "Kafka-Enable-Auto-Commit", "false")
			s.ok("POST", "/delete-consumer/"+g+"/"+g, "")
		}
		assert.Equal(t, "[]", s.ok("GET", "/consumers", ""))
		s.alive("F5")
	})

	t.Run("F6 idle connections without credentials", func(t *testing.T) {
		s := s.on(t)
		// With 1,024 files, 1,014 idle connections after a 401 each
		// locked out everyone; here 300 against a file limit of 256. Now
		// a 401 closes its connection and at the limit (64) the longest
		// idle connection without credentials makes room.
		addr := strings.TrimPrefix(s.url, "http://")
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range 300 {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			require.NoError(t, err)
			conns = append(conns, c)
			if i%2 == 0 { // half ask once without credentials and stay
				_, err = io.WriteString(c, "GET /topics HTTP/1.1\r\nHost: x\r\n\r\n")
				require.NoError(t, err)
			}
		}
		start := time.Now()
		client := &http.Client{Timeout: 5 * time.Second}
		defer client.CloseIdleConnections()
		r, err := http.NewRequest("GET", s.url+"/topics", nil)
		require.NoError(t, err)
		r.SetBasicAuth(abuseUser, abusePass)
		resp, err := client.Do(r)
		require.NoError(t, err, "an authenticated request among 300 connections without credentials")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Less(t, time.Since(start), 5*time.Second)
		s.alive("F6")
	})

	t.Run("F7 commit past the end does not strand the group", func(t *testing.T) {
		s := s.on(t)
		hdr := []string{"Kafka-Auto-Offset-Reset", "earliest", "Kafka-Enable-Auto-Commit", "false"}
		s.ok("POST", "/consume/g7/i1", `{"topic":"f7","timeout":0}`, hdr...)
		s.ok("POST", "/commit/g7/i1", `{"topic":"f7","partition":0,"offset":9223372036854775807}`)
		s.ok("POST", "/delete-consumer/g7/i1", "")
		s.ok("POST", "/produce/f7", `[{"value":"a"},{"value":"b"}]`)
		var got []fetched
		for i := 0; i < 20 && len(got) < 2; i++ {
			var more []fetched
			require.NoError(t, json.Unmarshal([]byte(s.ok("POST", "/consume/g7/i2", `{"topic":"f7","timeout":1000}`, hdr...)), &more))
			got = append(got, more...)
		}
		require.Len(t, got, 2, "the group's next consumer reads the records")
		assert.Equal(t, int64(0), got[0].Offset)
	})

	t.Run("F8 retention flags are honoured", func(t *testing.T) {
		s := s.on(t)
		// --retention-records 20000: of 50,000 records the last 20,000
		// are kept, as configured (the limit was fixed and undocumented).
		s.ok("POST", "/produce/f8", records(50_000, func(b *strings.Builder, _ int) { b.WriteString(`{"value":"r"}`) }))
		var got []fetched
		require.NoError(t, json.Unmarshal([]byte(s.ok("POST", "/fetch", `{"topic":"f8","partition":0,"offset":0,"timeout":0}`)), &got))
		require.NotEmpty(t, got)
		assert.Equal(t, int64(30_000), got[0].Offset)
		// --retention-bytes 8 MiB: junk kept at most 8 of its records.
		require.NoError(t, json.Unmarshal([]byte(s.ok("POST", "/fetch", `{"topic":"junk","partition":0,"offset":0,"timeout":0}`)), &got))
		require.NotEmpty(t, got)
		assert.GreaterOrEqual(t, got[0].Offset, int64(4*abuseReps(80)-8))
	})

	t.Run("F14 overflowing header values", func(t *testing.T) {
		s := s.on(t)
		for _, h := range []string{"Kafka-Session-Timeout-Ms", "Kafka-Auto-Commit-Interval", "Kafka-Max-Poll-Interval-Ms"} {
			status, msg := s.do("POST", "/consume/g14/i", `{"topic":"f14","timeout":0}`, h, "9223372036854775807")
			assert.Equal(t, http.StatusBadRequest, status, "%s: %s", h, msg)
			assert.Contains(t, msg, "2147483647", h)
			assert.NotContains(t, msg, "negative", h)
		}
		r, err := http.NewRequest("GET", s.url+"/topics", nil)
		require.NoError(t, err)
		r.Header.Set("Authorization", "Basic dQ==")
		resp, err := s.client.Do(r)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, string(b), "username:password")
	})

	// Still serving, quickly.
	start := time.Now()
	assert.Contains(t, s.ok("GET", "/topics", ""), `"keep":1`)
	assert.Less(t, time.Since(start), 2*time.Second, "GET /topics after the attacks")
	s.alive("the attacks")

	// Clean shutdown on SIGTERM, then the child's report.
	s.client.CloseIdleConnections()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("kafka-rest did not stop within 20 s of SIGTERM\n%s", tail(s.logs.String(), 2000))
	}
	assert.Equal(t, 0, s.cmd.ProcessState.ExitCode(), "exit status; log tail: %s", tail(s.logs.String(), 2000))
	b, err := os.ReadFile(s.report)
	require.NoError(t, err, "the child's report")
	var rep abuseReport
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.Empty(t, rep.Breach)
	assert.Empty(t, rep.RunError)
	assert.Positive(t, rep.Samples)
	assert.Less(t, rep.PeakHeapBytes, int64(abuseHeapCap))
	assert.Less(t, rep.PeakRSSBytes, abuseRSSCap())
	t.Logf("abuse suite: %v; child peak heap %d MiB (cap %d MiB, GOMEMLIMIT %s), peak RSS %d MiB (cap %d MiB, race %v), %d samples",
		time.Since(begin).Round(time.Millisecond), rep.PeakHeapBytes>>20, abuseHeapCap>>20, abuseMemLimit,
		rep.PeakRSSBytes>>20, abuseRSSCap()>>20, raceEnabled, rep.Samples)
}

// TestAbuseMissingCredentialsDoNotLockOut: requests without any
// credentials are not login guesses, yet with the default
// --failed-login-limit (60 a minute per address) they lock the address
// out: after 60 plain 401s from 127.0.0.1, the authenticated client on the
// same address gets 429 for the right password. Finding 6's attack (one
// 401 per connection) thus still shuts out a legitimate client on a shared
// address (loopback, a reverse proxy, NAT) with the default flags, only by
// 429 instead of by file descriptors; the bucket regains one try a
// second, so one request a second without credentials keeps the address
// out for as long as it goes on. FAILS on the current code: the
// limiter counts every failed authentication, missing credentials
// included (restserver.Server.authenticate).
func TestAbuseMissingCredentialsDoNotLockOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	s := startAbuseServer(t)
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for range 60 {
		resp, err := client.Get(s.url + "/topics")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	status, body := s.do("GET", "/topics", "")
	assert.Equal(t, http.StatusOK, status, "the right credentials after 60 requests without any: %s", body)
}
