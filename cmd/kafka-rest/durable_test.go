//go:build linux

package main

// Process-level tests of --data-dir (issue 10, part 1 and crash test 3a):
// the real kafka-rest binary, built once, runs as a child process on a data
// dir and is killed with SIGKILL; what it acknowledged must be there when it
// starts again on the same dir.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// kafkaRestBinary builds cmd/kafka-rest once per test binary.
func kafkaRestBinary(t *testing.T) string {
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
	t      *testing.T
	cmd    *exec.Cmd
	logs   *syncBuffer
	url    string
	exited chan struct{}
}

var listenRE = regexp.MustCompile(`url=(http://[0-9.:]+)`)

// startChild runs the built kafka-rest with args and waits (bounded) until
// it listens; with ready false it only starts it.
func startChild(t *testing.T, ready bool, args ...string) *child {
	t.Helper()
	c := &child{t: t, logs: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(kafkaRestBinary(t), args...)
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
	deadline := time.Now().Add(30 * time.Second)
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
			t.Fatalf("kafka-rest did not listen within 30 s\n%s", c.logs.String())
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

	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil))
	status, body = call("POST", c.url+"/produce/t", `{"value":"third"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	var meta []produced
	require.NoError(t, json.Unmarshal(body, &meta))
	assert.Equal(t, int64(1), meta[0].Offset, "the refused records took no offset")

	c.kill()
	c2 := startChild(t, true, "--addr", addr, "--data-dir", dir)
	assert.Equal(t, map[int64]string{0: "first", 1: "third"}, fetchAll(t, c2.url, "t", 0))
}

var _ = bytes.MinRead
var _ = context.Background
var _ atomic.Int64
