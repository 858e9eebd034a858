//go:build linux

package main

// Process-level tests of --data-dir (issue 10, part 1 and crash test 3a):
// the real kafka-rest binary, built once, runs as a child process on a data
// dir and is killed with SIGKILL; what it acknowledged must be there when it
// starts again on the same dir.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// kafkaRestBinary builds cmd/kafka-rest once per test binary.
func kafkaRestBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kafka-rest-bin-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "kafka-rest")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// child is a running kafka-rest process.
type child struct {
	t      testing.TB
	cmd    *exec.Cmd
	logs   *syncBuffer
	url    string
	exited chan struct{}
}

var listenRE = regexp.MustCompile(`url=(http://[0-9.:]+)`)

// startChild runs the built kafka-rest with args and waits (up to 30 s)
// until it listens; with ready false it only starts it.
func startChild(t testing.TB, ready bool, args ...string) *child {
	return startChildWithin(t, ready, 30*time.Second, args...)
}

// startChildWithin is startChild waiting up to within.
func startChildWithin(t testing.TB, ready bool, within time.Duration, args ...string) *child {
	t.Helper()
	return startCmd(t, ready, within, exec.Command(kafkaRestBinary(t), args...))
}

// startCmd is startChildWithin running cmd, which runs kafka-rest.
func startCmd(t testing.TB, ready bool, within time.Duration, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{t: t, logs: &syncBuffer{}, exited: make(chan struct{}), cmd: cmd}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	require.NoError(t, c.cmd.Start())
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
	if !ready {
		return c
	}
	deadline := time.Now().Add(within)
	for {
		if m := listenRE.FindStringSubmatch(c.logs.String()); m != nil {
			c.url = m[1]
			return c
		}
		select {
		case <-c.exited:
			t.Fatalf("kafka-rest exited at start: %v\n%s", c.cmd.ProcessState, c.logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka-rest did not listen within %v\n%s", within, c.logs.String())
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatal("kafka-rest did not die of SIGKILL within 10 s")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop() {
	require.NoError(c.t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		c.t.Fatal("kafka-rest did not stop on SIGTERM within 20 s")
	}
	require.True(c.t, c.cmd.ProcessState.Success(), "exit: %v\n%s", c.cmd.ProcessState, c.logs.String())
}

// startBenchChild is startChild for a benchmark, waiting until it listens.
func startBenchChild(tb testing.TB, args ...string) *child { return startChild(tb, true, args...) }

// freeAddr returns a loopback address with a port free now, so a restarted
// server can listen where its clients already point.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

var httpc = &http.Client{Timeout: 10 * time.Second}

// call does a REST request and returns the status and body; a transport
// error is status 0.
func call(method, url, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type produced struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type fetchedRecord struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value"`
}

// fetchAll reads a partition from offset 0 to its end.
func fetchAll(t *testing.T, url, topic string, part int32) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	var next int64
	for {
		status, body := call("POST", url+"/fetch", fmt.Sprintf(`{"topic":%q,"partition":%d,"offset":%d,"timeout":100}`, topic, part, next))
		require.Equal(t, http.StatusOK, status, string(body))
		var recs []fetchedRecord
		require.NoError(t, json.Unmarshal(body, &recs))
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			out[r.Offset] = r.Value
			next = r.Offset + 1
		}
	}
}

func TestDataDirInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	a := startChild(t, true, "--addr", "127.0.0.1:0", "--data-dir", dir)
	b := startChild(t, false, "--addr", "127.0.0.1:0", "--data-dir", dir)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("a second kafka-rest on the same data dir did not exit")
	}
	assert.Equal(t, 1, b.cmd.ProcessState.ExitCode())
	assert.Contains(t, b.logs.String(), fmt.Sprintf("is in use by another process (pid %d", a.cmd.Process.Pid))
	a.kill()
	startChild(t, true, "--addr", "127.0.0.1:0", "--data-dir", dir) // the kernel dropped the dead one's lock
}

func TestBadFsyncFlagIsRefused(t *testing.T) {
	c := startChild(t, false, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--fsync", "sometimes")
	<-c.exited
	assert.Equal(t, 1, c.cmd.ProcessState.ExitCode())
	assert.Contains(t, c.logs.String(), "--fsync")
	assert.Contains(t, c.logs.String(), "want always, never or interval=DUR")
}

// TestFullDiskAnswers507 caps the running server's file size
// (RLIMIT_FSIZE, set from outside with prlimit(2), as root or not): a
// write past it fails as on a full disk. The produce gets a JSON 507, the
// record is not stored, and after the limit is lifted and after a SIGKILL
// and restart the log holds exactly what was acknowledged.
func TestFullDiskAnswers507(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	c := startChild(t, true, "--addr", addr, "--data-dir", dir, "--topics", "t:1")
	status, body := call("POST", c.url+"/produce/t", `{"value":"first"}`)
	require.Equal(t, http.StatusOK, status, string(body))

	// A member whose commit will not fit either (its group name makes the
	// metadata entry longer than the room left under the limit).
	group := strings.Repeat("g", 200)
	status, body = call("POST", c.url+"/consume/"+group+"/i", `{"topic":"t","timeout":100}`)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = call("POST", c.url+"/commit/"+group+"/i", `{"topic":"t","partition":0,"offset":1}`)
	require.Equal(t, http.StatusOK, status, string(body))

	seg := filepath.Join(dir, "logs", "t", "0", fmt.Sprintf("%020d.log", 0))
	st, err := os.Stat(seg)
	require.NoError(t, err)
	pid := c.cmd.Process.Pid
	var old unix.Rlimit
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: uint64(st.Size() + 16), Max: unix.RLIM_INFINITY}, &old))

	big := strings.Repeat("x", 4096)
	status, body = call("POST", c.url+"/produce/t", fmt.Sprintf(`[{"value":"second"},{"value":%q}]`, big))
	assert.Equal(t, http.StatusInsufficientStorage, status, string(body))
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	assert.Equal(t, 507, e.Status)
	assert.Contains(t, e.Error, "storage write failed")
	assert.Contains(t, e.Error, "file too large")
	st2, err := os.Stat(seg)
	require.NoError(t, err)
	assert.Equal(t, st.Size(), st2.Size(), "the short write was cut back")
	status, body = call("POST", c.url+"/commit/"+group+"/i", `{"topic":"t","partition":0,"offset":0}`)
	assert.Equal(t, http.StatusInsufficientStorage, status, "a commit that cannot be written: %s", body)

	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil))
	status, body = call("POST", c.url+"/produce/t", `{"value":"third"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var meta []produced
	require.NoError(t, json.Unmarshal(body, &meta))
	assert.Equal(t, int64(1), meta[0].Offset, "the refused records took no offset")

	c.kill()
	c2 := startChild(t, true, "--addr", addr, "--data-dir", dir)
	assert.Equal(t, map[int64]string{0: "first", 1: "third"}, fetchAll(t, c2.url, "t", 0))
	status, body = call("POST", c2.url+"/committed/"+group+"/i2", `{"topic":"t","partition":0}`)
	require.Equal(t, http.StatusOK, status, string(body))
	assert.Contains(t, string(body), `"offset":1`, "the refused commit did not replace the acknowledged one")
}

// TestCrashKeepsAcknowledged is crash test 3a: kafka-rest --data-dir runs
// with producers, a REST consumer committing offsets, and an rpc server and
// client (transport/upstash) making 1,000 calls with WithResend; it is
// killed with SIGKILL in the middle and started again on the same dir and
// port. Every acknowledged produce is readable afterwards at its offset,
// the last acknowledged commit is not lost, every call is answered
// correctly, and no handler's side effect happens twice. --fsync never is
// the weakest policy: a process crash must lose nothing under any.
func TestCrashKeepsAcknowledged(t *testing.T) {
	const calls, callers, producers = 1000, 32, 4
	dir, addr := t.TempDir(), freeAddr(t)
	args := []string{"--addr", addr, "--data-dir", dir, "--partitions", "3", "--fsync", "never",
		"--topics", "acked:3,commits:1"}
	c := startChild(t, true, args...)
	url := c.url
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The rpc server and client, each with its own REST transport.
	backoff := upstash.WithBackoff(upstash.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: 60 * time.Second})
	newTr := func() *upstash.Transport {
		tr, err := upstash.New(upstash.WithURL(url), backoff, upstash.WithLogger(quietLog))
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	srv, err := rpc.NewServer(newTr(), rpc.WithName("crash3a-srv"), rpc.WithLogger(quietLog), rpc.WithConcurrency(16))
	require.NoError(t, err)
	var effects sync.Map // request id → *atomic.Int64
	rpc.Handle(srv, "crash3a-jobs", func(ctx context.Context, n int) (int, error) {
		v, _ := effects.LoadOrStore(rpc.RequestID(ctx), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		return 2 * n, nil
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	cli, err := rpc.NewClient(newTr(), rpc.WithName("crash3a-cli"), rpc.WithLogger(quietLog), rpc.WithResend(500*time.Millisecond))
	require.NoError(t, err)
	defer cli.Close()

	// Producers: every record whose produce was answered 200 is noted.
	var (
		ackMu sync.Mutex
		acked = map[produced]string{}
		stop  = make(chan struct{})
		bg    sync.WaitGroup
	)
	for w := range producers {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				vals := make([]string, 10)
				var body strings.Builder
				body.WriteString("[")
				for j := range vals {
					vals[j] = fmt.Sprintf("w%d-%d-%d", w, i, j)
					if j > 0 {
						body.WriteString(",")
					}
					fmt.Fprintf(&body, `{"value":%q}`, vals[j])
				}
				body.WriteString("]")
				status, resp := call("POST", url+"/produce/acked", body.String())
				if status != http.StatusOK {
					continue // not acknowledged: no promise
				}
				var metas []produced
				if !assert.NoError(t, json.Unmarshal(resp, &metas)) || !assert.Len(t, metas, len(vals)) {
					return
				}
				ackMu.Lock()
				for j, m := range metas {
					acked[m] = vals[j]
				}
				ackMu.Unlock()
			}
		}()
	}
	// A group member commits ever higher offsets; the last one answered
	// 200 before the kill must survive it.
	var lastCommit, tried atomic.Int64
	lastCommit.Store(-1)
	status, body := call("POST", url+"/consume/cg/ci", `{"topic":"commits","timeout":100}`)
	require.Equal(t, http.StatusOK, status, string(body))
	bg.Add(1)
	go func() {
		defer bg.Done()
		for off := int64(1); ; off++ {
			select {
			case <-stop:
				return
			default:
			}
			tried.Store(off)
			status, _ := call("POST", url+"/commit/cg/ci", fmt.Sprintf(`{"topic":"commits","partition":0,"offset":%d}`, off))
			if status != http.StatusOK {
				return // the server died: this commit has no promise
			}
			lastCommit.Store(off)
		}
	}()

	// The calls.
	var answered, wrong atomic.Int64
	work := make(chan int)
	var callWG sync.WaitGroup
	for range callers {
		callWG.Add(1)
		go func() {
			defer callWG.Done()
			for n := range work {
				cctx, ccancel := context.WithTimeout(ctx, 90*time.Second)
				got, err := rpc.Call[int](cctx, cli, "crash3a-jobs", n)
				ccancel()
				if assert.NoError(t, err, "call %d", n) && got == 2*n {
					answered.Add(1)
				} else {
					wrong.Add(1)
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for n := range calls {
			select {
			case work <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	waitUntil(t, 60*time.Second, func() bool { return answered.Load() >= calls*3/10 }, "30% of the calls answered before the kill")
	committedBefore := lastCommit.Load()
	c.kill()
	killedAt := time.Now()
	answeredAtKill := answered.Load()
	c2 := startChild(t, true, args...)
	restartedAt := time.Now()
	waitUntil(t, 60*time.Second, func() bool { return answered.Load() > answeredAtKill+callers }, "calls answered after the restart")
	firstAfter := time.Since(restartedAt)
	callDone := make(chan struct{})
	go func() { callWG.Wait(); close(callDone) }()
	select {
	case <-callDone:
	case <-time.After(120 * time.Second):
		t.Fatalf("%d of %d calls answered within 120 s of the restart", answered.Load(), calls)
	}
	close(stop)
	bg.Wait()
	cancel()
	<-served

	assert.Equal(t, int64(calls), answered.Load(), "every call answered correctly")
	assert.Zero(t, wrong.Load())
	dups, runs := 0, 0
	effects.Range(func(_, v any) bool {
		runs++
		if v.(*atomic.Int64).Load() > 1 {
			dups++
		}
		return true
	})
	assert.Zero(t, dups, "handler side effects done twice")
	assert.Equal(t, calls, runs, "one handled request per call")

	// Every acknowledged produce is readable at its offset.
	ackMu.Lock()
	defer ackMu.Unlock()
	logs := map[int32]map[int64]string{}
	for p := range int32(3) {
		logs[p] = fetchAll(t, c2.url, "acked", p)
	}
	missing := 0
	for m, v := range acked {
		if logs[m.Partition][m.Offset] != v {
			missing++
		}
	}
	assert.Zero(t, missing, "acknowledged records missing or changed after the SIGKILL (of %d)", len(acked))
	for p, l := range logs {
		for off := range int64(len(l)) {
			_, ok := l[off]
			require.True(t, ok, "partition %d: offsets are dense: %d missing", p, off)
		}
	}

	// The committed offset is at least the last one acknowledged before the
	// kill (the committer stopped at its first failure, so nothing later
	// overwrote it), and at most the last one sent.
	status, body = call("POST", c2.url+"/committed/cg/ci-after", `{"topic":"commits","partition":0}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var com []produced
	require.NoError(t, json.Unmarshal(body, &com))
	require.Len(t, com, 1)
	assert.GreaterOrEqual(t, com[0].Offset, lastCommit.Load())
	assert.LessOrEqual(t, com[0].Offset, tried.Load())
	assert.GreaterOrEqual(t, lastCommit.Load(), committedBefore)
	t.Logf("SIGKILL with %d of %d calls answered; %d acknowledged records all readable after the restart; last acknowledged commit %d, committed after restart %d; "+
		"outage %v (kill to listening again), first answered calls %v after the restart; %d handler runs, %d duplicate side effects; client resent %d requests",
		answeredAtKill, calls, len(acked), lastCommit.Load(), com[0].Offset, restartedAt.Sub(killedAt).Round(time.Millisecond),
		firstAfter.Round(time.Millisecond), runs, dups, cli.Stats().Resent)
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
