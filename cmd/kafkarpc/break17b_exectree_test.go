//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
)

// alive reports whether pid runs: a process that is gone or a zombie
// (killed, not reaped yet by its new parent) is not.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(stat)
	rest := strings.TrimSpace(s[strings.LastIndexByte(s, ')')+1:])
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// TestExecDeadlineKillsTheCommandsChildren: serve --exec runs its command
// under sh -c, and a request whose deadline passes (or a stop's canceled
// handlers) killed sh alone. What sh had started (the command's real work)
// ran on, orphaned, after the caller was told deadline_exceeded and after
// serve exited, and the handler waited the pipes' WaitDelay for it. S17B: a
// `kafkarpc serve slow --exec 'sleep 2; ...'` called with --timeout 500ms
// logged "deadline_exceeded in 1.5s" and left the sleep running.
func TestExecDeadlineKillsTheCommandsChildren(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := execHandler(`sleep 30 & echo $! > ` + pidFile + `; wait`)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h(ctx, &rpc.Request{})
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	b, err := os.ReadFile(pidFile)
	require.NoError(t, err, "the command started its child")
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil && alive(pid) {
			_ = p.Kill()
		}
	})
	require.Eventually(t, func() bool { return !alive(pid) }, 2*time.Second, 10*time.Millisecond,
		"the command's child (pid %d) still runs after its request's deadline", pid)
	require.Less(t, took, 900*time.Millisecond, "the handler returns at the deadline, not after the pipes' WaitDelay")
}

// TestCtrlCDrainsTheCommandsInFlight: Ctrl-C in a terminal sends SIGINT to
// the whole foreground process group, and the commands of serve --exec
// were in serve's group: they died at once (the caller got "internal: the
// command exited with status -1") instead of finishing in the drain that
// serve's SIGINT starts. In a group of their own, they finish.
func TestCtrlCDrainsTheCommandsInFlight(t *testing.T) {
	t.Parallel()
	s := startService(t)
	started := filepath.Join(t.TempDir(), "started")
	serve := exec.Command(binary, "serve", "reports", "--exec", `touch `+started+`; sleep 0.5; echo finished`)
	serve.Env = s.env
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
	var serveOut syncBuffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	require.NoError(t, serve.Start())
	var serveErr error
	served := make(chan struct{})
	go func() { serveErr = serve.Wait(); close(served) }()
	t.Cleanup(func() {
		_ = serve.Process.Kill()
		<-served
		t.Logf("serve: %s", serveOut.String())
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := exec.CommandContext(ctx, binary, "call", "reports", "{}")
	call.Env = s.env
	var callOut syncBuffer
	call.Stdout, call.Stderr = &callOut, &callOut
	require.NoError(t, call.Start())
	called := make(chan error, 1)
	go func() { called <- call.Wait() }()

	require.Eventually(t, func() bool { _, err := os.Stat(started); return err == nil }, 20*time.Second, 10*time.Millisecond,
		"the command runs: %s", serveOut.String())
	require.NoError(t, syscall.Kill(-serve.Process.Pid, syscall.SIGINT), "Ctrl-C")

	select {
	case err := <-called:
		require.NoError(t, err, "the call: %s", callOut.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no answer to the call: %s", callOut.String())
	}
	require.Equal(t, "\"finished\"\n", callOut.String(), "the command in flight finished in the drain")
	select {
	case <-served:
		require.NoError(t, serveErr, "serve stops cleanly after the drain")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after Ctrl-C")
	}
}
