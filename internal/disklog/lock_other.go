//go:build !unix

package disklog

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens path/LOCK without locking it: this platform has no
// flock(2) here, so two processes could share a data dir. Do not run two.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(path, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("disklog: data dir lock: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) { f.Close() }
