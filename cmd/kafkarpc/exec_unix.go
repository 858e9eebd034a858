//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killTree makes the end of cmd's context kill what the command started
// too: cmd runs in a process group of its own, and its Cancel kills the
// group. exec.CommandContext kills sh alone, and what sh had started (the
// command's real work) ran on, orphaned, after its request's deadline or
// the stop that canceled it.
func killTree(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
