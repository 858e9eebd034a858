package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// envRequireBrowser makes TestBrowser fail, instead of skip, when Chromium,
// Node.js or the npm packages are missing. CI sets it after installing them.
const envRequireBrowser = "KAFKARPC_REQUIRE_BROWSER"

const browserInstall = "apt-get install -y chromium nodejs npm && npm ci --prefix examples/reports/testdata/browser"

// browserMissing says what the browser test lacks, or "" when nothing.
func browserMissing(scriptDir string) string {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(scriptDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, filepath.Join(scriptDir, "node_modules", "playwright-core"))
	}
	return strings.Join(missing, ", ")
}

// The page in a real browser: Debian's Chromium, headless, driven by
// playwright-core. It opens the page, starts a report and sees the progress
// and then the download link appear, downloads the .xlsx, and sees the
// error of a bad period.
func TestBrowser(t *testing.T) {
	t.Parallel()
	scriptDir, err := filepath.Abs(filepath.Join("testdata", "browser"))
	require.NoError(t, err)
	if missing := browserMissing(scriptDir); missing != "" {
		if os.Getenv(envRequireBrowser) == "1" {
			t.Fatalf("browser test needs %s (%s=1 is set); install with: %s", missing, envRequireBrowser, browserInstall)
		}
		t.Skipf("browser test skipped: missing %s. Install with: %s (set %s=1 to make this a failure)", missing, browserInstall, envRequireBrowser)
	}

	h := newHarness(t)
	h.startWorker()
	_, srv, _ := h.startWeb(filepath.Join(h.dir, "web.db"))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "report.mjs")
	cmd.Dir = scriptDir
	cmd.Env = append(os.Environ(), "REPORTS_URL="+srv.URL+"/")
	// On timeout, let Playwright close Chromium (it does on SIGINT) before
	// the process is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	require.NoError(t, err, "node report.mjs\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	t.Logf("browser run took %v", time.Since(start).Round(time.Millisecond))

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var seen struct {
		From, To  string
		Progress  []string
		State     string
		StateText string
		Href      string
		Download  struct {
			Name string
			Size int
			Zip  string
		}
		ErrorCode  string
		ErrorText  string
		PageErrors []string
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &seen), stdout.String())
	require.NotEmpty(t, seen.Progress, "progress shown")
	assert.Contains(t, seen.Progress[0], "querying sales")
	assert.Equal(t, stateDone, seen.State)
	assert.Contains(t, seen.StateText, "rows, total")
	assert.Regexp(t, `^/reports/[0-9a-f-]+/download$`, seen.Href)
	assert.Equal(t, "PK", seen.Download.Zip, "the download is an .xlsx (zip)")
	assert.Positive(t, seen.Download.Size)
	assert.True(t, strings.HasPrefix(seen.Download.Name, "sales_") && strings.HasSuffix(seen.Download.Name, ".xlsx"), seen.Download.Name)
	assert.Equal(t, "invalid_argument", seen.ErrorCode)
	assert.Contains(t, seen.ErrorText, "from 2026-11-01 is after to 2026-10-01")
	assert.Empty(t, seen.PageErrors, "no script errors on the page")
}
