//go:build unix

package disklog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockDir takes an exclusive flock(2) on path/LOCK and writes the pid
// into it. The kernel drops the lock when the process dies, however it
// dies, so a crashed server never leaves a stale lock.
func lockDir(path string) (*os.File, error) {
	name := filepath.Join(path, "LOCK")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("disklog: data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(name)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("disklog: data dir %s is in use by another process (pid %s holds %s): stop it or use another directory",
				path, string(bytes.TrimSpace(pid)), name)
		}
		return nil, fmt.Errorf("disklog: lock data dir %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockDir releases the lock.
func unlockDir(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}
