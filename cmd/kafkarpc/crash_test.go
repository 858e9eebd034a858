package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeCrash kills a serve process with SIGKILL while it runs a
// request; a new one started with the same --instance takes over its
// partitions at once and answers the request, and the waiting caller gets
// the reply: nothing is lost with the process.
func TestServeCrash(t *testing.T) {
	t.Parallel()
	s := startService(t)
	dir := t.TempDir()
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	// The first run marks itself and hangs (until the test ends); later
	// runs answer. The orphaned first run ends when release appears or dir
	// is gone: t.TempDir removes dir right after the cleanup below writes
	// release, often before the loop's next look (it then looped forever,
	// outliving the test).
	cmd := `if [ ! -f ` + started + ` ]; then touch ` + started + `; while [ -d ` + dir + ` ] && [ ! -f ` + release + ` ]; do sleep 0.1; done; fi; echo '"done"'`
	t.Cleanup(func() { os.WriteFile(release, nil, 0o600) })

	first := start(t, s.env, "serve", "reports", "--instance", "w1", "--exec", cmd)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call := exec.CommandContext(ctx, binary, "call", "reports", "{}", "--timeout", "50s")
	call.Env = s.env
	var out, errOut syncBuffer
	call.Stdout, call.Stderr = &out, &errOut
	require.NoError(t, call.Start())

	waitFor(t, "the first serve to run the request", func() bool { _, err := os.Stat(started); return err == nil })
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.done

	start(t, s.env, "serve", "reports", "--instance", "w1", "--exec", cmd)
	err := call.Wait()
	t.Logf("call: %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
	require.NoError(t, err)
	assert.Equal(t, `"done"`, strings.TrimSpace(out.String()))
}
