package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// binary is the kafkarpc command built by TestMain: the tests drive it as
// a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kafkarpc-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "kafkarpc")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kafkarpc:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// service is a kafka-rest server on loopback, without auto-create, with
// the topics the CLI's defaults use.
type service struct {
	srv *resttest.Server
	env []string
}

// defaultTopics are those the CLI and a served "reports" topic need, and
// "idle", which nobody serves.
var defaultTopics = []string{"kafkarpc-cli.replies", "kafkarpc-cli.notices", "kafkarpc-cli.handled", "reports", "reports.dlq", "idle"}

func startService(t *testing.T, server ...restserver.Option) *service {
	t.Helper()
	srv := resttest.Start(t, resttest.Config{Broker: []memory.Option{memory.WithAutoCreate(false)}, Server: server})
	for _, tp := range defaultTopics {
		require.NoError(t, srv.Broker.CreateTopic(tp, 2))
	}
	return &service{srv: srv, env: cleanEnv("UPSTASH_KAFKA_REST_URL=" + srv.URL)}
}

// cleanEnv is the test's environment without connection variables, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "UPSTASH_") && !strings.HasPrefix(kv, "KAFKA_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// result is a finished run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary to its end (at most a minute) with stdin.
func runCLI(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	t.Logf("kafkarpc %s → %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return result{stdout.String(), stderr.String(), code}
}

// syncBuffer is a buffer written by a process and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is the binary running in the background.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int
}

// start runs the binary in the background; the test's cleanup stops it
// with SIGTERM (SIGKILL if it has not exited 20 s later).
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		t.Logf("kafkarpc %s (background) → %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), p.code, p.stdout.String(), p.stderr.String())
	})
	return p
}

// stop sends SIGTERM and waits for the exit, bounded.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("kafkarpc %v did not stop within 20 s of SIGTERM", p.cmd.Args[1:])
	}
}

// waitFor polls until cond holds, failing the test after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsonLines decodes each line of out as a JSON object.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
		objs = append(objs, m)
	}
	return objs
}

// oneLineErr asserts that a failed run said why on exactly one stderr line.
func oneLineErr(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "exit code")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.Len(t, lines, 1, "one line on stderr: %q", r.stderr)
	for _, c := range contains {
		require.Contains(t, lines[0], c)
	}
}

// countLines is the number of lines in file, 0 if it does not exist.
func countLines(t *testing.T, file string) int {
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	return strings.Count(string(b), "\n")
}
