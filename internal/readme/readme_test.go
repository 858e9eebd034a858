// Package readme keeps the README honest: every ```go block in it must be a
// program that compiles, and the quick start must run.
package readme

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func TestREADMEGoBlocks(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	blocks := goBlock.FindAllSubmatch(readme, -1)
	require.GreaterOrEqual(t, len(blocks), 2, "README has its Go blocks")
	for i, b := range blocks {
		src := b[1]
		require.True(t, bytes.HasPrefix(src, []byte("package main\n")), "block %d is a whole program", i)
		// Build inside the module, so the block uses this checkout and its
		// go.sum, with no network.
		dir, err := os.MkdirTemp(root, "_readme-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644))
		bin := filepath.Join(t.TempDir(), "block")
		build := exec.Command("go", "build", "-o", bin, "./"+filepath.Base(dir))
		build.Dir = root
		out, err := build.CombinedOutput()
		require.NoError(t, err, "README block %d does not compile:\n%s", i, out)
		vet := exec.Command("go", "vet", "./"+filepath.Base(dir))
		vet.Dir = root
		out, err = vet.CombinedOutput()
		require.NoError(t, err, "README block %d: go vet:\n%s", i, out)

		if strings.Contains(string(src), "memory.New()") {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin).CombinedOutput()
			require.NoError(t, err, "quick start failed:\n%s", out)
			require.Contains(t, string(out), "report ready: r-1 42")
			// A clean stop says nothing alarming (breakO: a paced commit
			// cut short by the stop was logged as "commit failed", WARN).
			require.NotContains(t, string(out), "WARN", "the quick start's clean stop warns")
			require.NotContains(t, string(out), "ERROR", "the quick start's clean stop logs an error")
		}
	}
}
