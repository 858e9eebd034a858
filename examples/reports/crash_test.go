//go:build unix

package main

import (
	"bufio"
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
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Crash test 3b: the README's three-process setup, as built binaries
// (kafka-rest, two `reports -role worker`, one `reports -role web`), under a
// load of reports; workers are killed with SIGKILL and started again three
// times, the web app once. Every report requested must finish, and with the
// stable instance ids the roles now take by default, a restarted process
// handles its first request (worker) or notice (web app) within 2 s of its
// start: it takes its partitions back at once instead of waiting for the
// dead instance to be dropped (minutes). The figures are printed in the log.
func TestCrashRestartThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries: not with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH: cannot build the binaries")
	}
	bin := t.TempDir()
	build := func(pkg, out string) string {
		path := filepath.Join(bin, out)
		cmd := exec.Command(goTool, "build", "-o", path, pkg)
		cmd.Dir = filepath.Join("..", "..")
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s: %s", pkg, b)
		return path
	}
	restBin := build("./cmd/kafka-rest", "kafka-rest")
	reportsBin := build("./examples/reports", "reports")

	rest := startProc(t, "kafka-rest", restBin, nil,
		"--addr", "127.0.0.1:0", "--topics", "reports:3", "--username", "u", "--password", "p", "--log-level", "info")
	restURL := rest.waitFor(t, regexp.MustCompile(`url=(http://[0-9.:]+)`), 10*time.Second)
	env := []string{"UPSTASH_KAFKA_REST_URL=" + restURL, "UPSTASH_KAFKA_REST_USERNAME=u", "UPSTASH_KAFKA_REST_PASSWORD=p", "KAFKA_INSTANCE="}

	// REPORTS_CRASH_RANDOM_IDS=1 runs the same scenario as before stable
	// ids, each process with a new id, to measure what they change: it
	// reports its figures and asserts nothing.
	baseline := os.Getenv("REPORTS_CRASH_RANDOM_IDS") != ""
	procEnv := func() []string {
		if !baseline {
			return env
		}
		return append(slices.Clone(env), "KAFKA_INSTANCE="+randomSecret())
	}

	dir := t.TempDir()
	handled := regexp.MustCompile(`rpc: request handled`)
	serving := regexp.MustCompile(`reports worker serving`)
	startWorker := func(name string) *proc {
		p := startProc(t, name, reportsBin, procEnv(), "-role", "worker", "-dir", dir, "-v")
		p.watch(handled)
		return p
	}
	workers := []*proc{startWorker("worker-a")}
	workers[0].waitFor(t, serving, 20*time.Second) // seeds sales.db before the second opens it
	workers = append(workers, startWorker("worker-b"))
	workers[1].waitFor(t, serving, 20*time.Second)

	webAddr := freeAddr(t)
	notice := regexp.MustCompile(`report notice`)
	startWebProc := func() *proc {
		p := startProc(t, "web", reportsBin, procEnv(), "-role", "web", "-dir", dir, "-addr", webAddr, "-v")
		p.watch(notice)
		return p
	}
	web := startWebProc()
	webURL := "http://" + web.waitFor(t, regexp.MustCompile(`web app: http://([0-9.:]+)/`), 20*time.Second)

	// The load: one report a tick, each for one day of the last months,
	// until stopped; ids of the accepted ones are kept. A POST refused while
	// the web app is down is not a report.
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	var ids []string
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(120 * time.Millisecond)
		defer tick.Stop()
		day := time.Now().UTC().AddDate(0, -3, 0)
		for i := 0; ; i++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			d := day.AddDate(0, 0, i%60).Format(time.DateOnly)
			body, _ := json.Marshal(ReportRequest{From: d, To: d})
			res, err := hc.Post(webURL+"/reports", "application/json", bytes.NewReader(body))
			if err != nil {
				continue
			}
			var started struct{ ID string }
			_ = json.NewDecoder(res.Body).Decode(&started)
			res.Body.Close()
			if res.StatusCode == http.StatusAccepted && started.ID != "" {
				mu.Lock()
				ids = append(ids, started.ID)
				mu.Unlock()
			}
		}
	}()

	type restart struct {
		what  string
		took  time.Duration // start of the new process to its first handled request or notice
		first bool
	}
	var restarts []restart
	waitFirst := func(what string, p *proc) {
		at, ok := p.firstMatch(10 * time.Second)
		r := restart{what: what, first: ok}
		if ok {
			r.took = at.Sub(p.started)
		}
		restarts = append(restarts, r)
	}
	pause := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-t.Context().Done():
		}
	}
	pause(2 * time.Second)
	for i, w := range []int{0, 1, 0} {
		old := workers[w]
		old.kill(t)
		workers[w] = startWorker(fmt.Sprintf("%s-restart%d", old.name, i+1))
		waitFirst(fmt.Sprintf("worker %s (restart %d)", old.name, i+1), workers[w])
		pause(1500 * time.Millisecond)
	}
	web.kill(t)
	pause(500 * time.Millisecond) // notices pile up while it is down
	web = startWebProc()
	waitFirst("web app", web)
	pause(2 * time.Second)
	stopLoad()
	<-loadDone
	loadStopped := time.Now()

	// Every report requested finishes.
	mu.Lock()
	all := slices.Clone(ids)
	mu.Unlock()
	require.NotEmpty(t, all)
	deadline := time.Now().Add(30 * time.Second)
	pending := all
	var failed []string
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, id := range pending {
			switch st := reportState(hc, webURL, id); st {
			case stateDone:
			case stateFailed:
				failed = append(failed, id)
			default:
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) > 0 {
			pause(200 * time.Millisecond)
		}
	}
	allDone := time.Now()
	t.Logf("%d reports requested under load; %d not finished 30 s after the load stopped, %d failed", len(all), len(pending), len(failed))
	for _, r := range restarts {
		if r.first {
			t.Logf("restart of %s: first handled %s after the process started", r.what, r.took.Round(time.Millisecond))
		} else {
			t.Logf("restart of %s: nothing handled within 10 s", r.what)
		}
	}
	t.Logf("every report checked %v after the load stopped", allDone.Sub(loadStopped).Round(time.Millisecond))
	if baseline {
		groupInstances(t, hc, restURL, "reports-worker")
		return
	}
	assert.Empty(t, pending, "reports never finished")
	assert.Empty(t, failed, "reports failed")
	for _, r := range restarts {
		assert.True(t, r.first, "%s handled nothing after its restart", r.what)
		assert.LessOrEqual(t, r.took, 2*time.Second, "%s took its partitions back too slowly", r.what)
	}
	// No dead member lingers: the group has exactly the two live workers.
	assert.Len(t, groupInstances(t, hc, restURL, "reports-worker"), 2)
	assert.Len(t, groupInstances(t, hc, restURL, "web"), 1)
}

// reportState is the state of a report in the web app, "" when unknown.
func reportState(hc *http.Client, base, id string) string {
	res, err := hc.Get(base + "/reports/" + id)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var st struct{ State string }
	if json.NewDecoder(res.Body).Decode(&st) != nil {
		return ""
	}
	return st.State
}

// groupInstances lists the instances kafka-rest knows in group.
func groupInstances(t *testing.T, hc *http.Client, restURL, group string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, restURL+"/consumers", nil)
	require.NoError(t, err)
	req.SetBasicAuth("u", "p")
	res, err := hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var groups []struct {
		Name      string
		Instances []struct{ Name string }
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&groups))
	var out []string
	for _, g := range groups {
		if g.Name == group {
			for _, in := range g.Instances {
				out = append(out, in.Name)
			}
		}
	}
	t.Logf("group %s: instances %q", group, out)
	return out
}

// freeAddr returns a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// proc is a child process whose output lines are scanned as they come.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced at each line
	watched *regexp.Regexp
	first   time.Time // of the first line matching watched
}

// startProc starts path with args (and env added to the test's), reading
// its stdout and stderr; it is killed when the test ends. Its output is
// logged if the test fails.
func startProc(t *testing.T, name, path string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, exited: make(chan struct{}), changed: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	p.started = time.Now()
	require.NoError(t, p.cmd.Start())
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Go(func() {
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				p.add(sc.Text())
			}
		})
	}
	go func() {
		readers.Wait()
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not exit", name)
		}
		if t.Failed() {
			p.mu.Lock()
			out := strings.Join(p.lines, "\n")
			p.mu.Unlock()
			if len(out) > 8000 {
				out = "..." + out[len(out)-8000:]
			}
			t.Logf("output of %s:\n%s", name, out)
		}
	})
	return p
}

func (p *proc) add(line string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	if p.watched != nil && p.first.IsZero() && p.watched.MatchString(line) {
		p.first = now
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// watch starts recording when a line first matches re (lines seen before
// count too).
func (p *proc) watch(re *regexp.Regexp) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watched = re
}

// firstMatch waits up to d for the first line matching the watched
// pattern and returns when it arrived.
func (p *proc) firstMatch(d time.Duration) (time.Time, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		first, changed := p.first, p.changed
		p.mu.Unlock()
		if !first.IsZero() {
			return first, true
		}
		select {
		case <-changed:
		case <-p.exited:
			return time.Time{}, false
		case <-deadline.C:
			return time.Time{}, false
		}
	}
}

// waitFor waits up to d for a line matching re and returns its first
// submatch (or the whole match).
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp, d time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines, changed := p.lines[seen:], p.changed
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m[len(m)-1]
			}
		}
		select {
		case <-changed:
		case <-p.exited:
			t.Fatalf("%s exited before printing %q", p.name, re)
		case <-deadline.C:
			t.Fatalf("%s did not print %q within %v", p.name, re, d)
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s survived SIGKILL", p.name)
	}
}
