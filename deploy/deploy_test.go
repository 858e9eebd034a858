package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// program is one program as a deployment file runs it.
type program struct {
	file    string            // the file, relative to deploy/
	name    string            // kafka-rest or reports-worker
	args    []string          // the command line, binary first
	env     map[string]string // environment given inline
	envFile string            // systemd EnvironmentFile
	stop    time.Duration     // TimeoutStopSec or stopwaitsecs
	procs   int               // supervisor numprocs (1 for systemd)
	prio    int               // supervisor priority (999 when not given)
}

// binaries maps a command's base name to its main package.
var binaries = map[string]string{
	"kafka-rest": "../cmd/kafka-rest",
	"reports":    "../examples/reports",
}

// gracefulStop is the longest graceful stop of each binary, from its code:
// kafka-rest waits up to 10 s for requests in flight (shutdownGrace in
// cmd/kafka-rest) and then closes the consumer instances; the worker's rpc
// server waits the drain timeout (30 s, rpc.WithDrainTimeout's default)
// and 6 s more after a hard stop (rpc.Server.Serve).
var gracefulStop = map[string]time.Duration{
	"kafka-rest": 10 * time.Second,
	"reports":    36 * time.Second,
}

func readPrograms(t *testing.T) []program {
	t.Helper()
	var out []program
	units, err := filepath.Glob("systemd/*.service")
	require.NoError(t, err)
	confs, err := filepath.Glob("supervisor/*.conf")
	require.NoError(t, err)
	require.NotEmpty(t, units)
	require.NotEmpty(t, confs)
	for _, f := range units {
		out = append(out, parseUnit(t, f))
	}
	for _, f := range confs {
		out = append(out, parseSupervisor(t, f)...)
	}
	return out
}

// lines returns f's key=value lines (comments and sections skipped).
func lines(t *testing.T, f string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(f)
	require.NoError(t, err)
	var kv [][2]string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		require.True(t, ok, "%s: line %q is not key=value", f, l)
		kv = append(kv, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return kv
}

func parseUnit(t *testing.T, f string) program {
	p := program{file: f, name: strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".service"), "@"), env: map[string]string{}, procs: 1}
	for _, kv := range lines(t, f) {
		switch kv[0] {
		case "ExecStart":
			p.args = strings.Fields(kv[1])
		case "Environment":
			k, v, _ := strings.Cut(kv[1], "=")
			p.env[k] = v
		case "EnvironmentFile":
			p.envFile = kv[1]
		case "TimeoutStopSec":
			n, err := strconv.Atoi(kv[1])
			require.NoError(t, err, "%s: TimeoutStopSec", f)
			p.stop = time.Duration(n) * time.Second
		}
	}
	require.NotEmpty(t, p.args, "%s: no ExecStart", f)
	return p
}

var supervisorEnv = regexp.MustCompile(`([A-Z_][A-Z0-9_]*)="([^"]*)"`)

func parseSupervisor(t *testing.T, f string) []program {
	p := program{file: f, env: map[string]string{}, procs: 1, prio: 999}
	for _, kv := range lines(t, f) {
		switch kv[0] {
		case "command":
			p.args = strings.Fields(kv[1])
		case "environment":
			for _, m := range supervisorEnv.FindAllStringSubmatch(kv[1], -1) {
				p.env[m[1]] = m[2]
			}
		case "stopwaitsecs":
			n, err := strconv.Atoi(kv[1])
			require.NoError(t, err, "%s: stopwaitsecs", f)
			p.stop = time.Duration(n) * time.Second
		case "priority":
			n, err := strconv.Atoi(kv[1])
			require.NoError(t, err, "%s: priority", f)
			p.prio = n
		case "numprocs":
			n, err := strconv.Atoi(kv[1])
			require.NoError(t, err, "%s: numprocs", f)
			p.procs = n
		}
	}
	p.name = strings.TrimSuffix(filepath.Base(f), ".conf")
	require.NotEmpty(t, p.args, "%s: no command", f)
	return []program{p}
}

// build builds the binaries once per test binary run.
var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kafkarpc-deploy-")
	if err != nil {
		return "", err
	}
	for name, pkg := range binaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", errors.New("go build " + pkg + ": " + err.Error() + "\n" + string(out))
		}
	}
	return dir, nil
})

func binDir(t *testing.T) string {
	t.Helper()
	dir, err := build()
	require.NoError(t, err)
	return dir
}

var helpFlag = regexp.MustCompile(`(?m)^\s+-([A-Za-z0-9][A-Za-z0-9-]*)`)

// definedFlags runs bin -help and returns the flags it lists.
func definedFlags(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "-help").CombinedOutput()
	require.NoError(t, err, "%s -help:\n%s", bin, out)
	var flags []string
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	require.NotEmpty(t, flags, "%s -help lists no flags:\n%s", bin, out)
	return flags
}

// flagNames returns the flag names of a command line's arguments.
func flagNames(args []string) []string {
	var names []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			names = append(names, name)
		}
	}
	return names
}

// TestFlagsExist checks every flag of every command line in deploy/
// against the flags the built binary lists in -help.
func TestFlagsExist(t *testing.T) {
	dir := binDir(t)
	defined := map[string][]string{}
	for _, p := range readPrograms(t) {
		base := filepath.Base(p.args[0])
		_, ok := binaries[base]
		require.True(t, ok, "%s runs %s, which is not a binary of this repository", p.file, p.args[0])
		if defined[base] == nil {
			defined[base] = definedFlags(t, filepath.Join(dir, base))
		}
		names := flagNames(p.args[1:])
		require.NotEmpty(t, names, p.file)
		for _, name := range names {
			assert.Contains(t, defined[base], name, "%s: %s has no flag -%s", p.file, base, name)
		}
	}
}

// TestEnvironmentIsRead checks that every environment variable the files
// set is one the code reads: its name is a string literal in a non-test Go
// file of the module.
func TestEnvironmentIsRead(t *testing.T) {
	literals := goStringLiterals(t, "..")
	names := map[string]string{}
	for _, p := range readPrograms(t) {
		for k := range p.env {
			names[k] = p.file
		}
	}
	envFiles, err := filepath.Glob("env/*.env")
	require.NoError(t, err)
	require.NotEmpty(t, envFiles)
	for _, f := range envFiles {
		for _, kv := range lines(t, f) {
			names[kv[0]] = f
		}
	}
	require.NotEmpty(t, names)
	for name, file := range names {
		assert.True(t, literals[name], "%s sets %s, which no Go code of the module names", file, name)
	}
}

// goStringLiterals returns the double-quoted literals of the module's
// non-test Go files.
func goStringLiterals(t *testing.T, root string) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"([A-Z][A-Z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// TestStopTimeouts checks that each program's stop timeout covers its
// graceful stop, and that systemd and supervisor agree.
func TestStopTimeouts(t *testing.T) {
	byName := map[string][]program{}
	for _, p := range readPrograms(t) {
		base := filepath.Base(p.args[0])
		require.Positive(t, p.stop, "%s: no stop timeout", p.file)
		assert.GreaterOrEqual(t, p.stop, gracefulStop[base], "%s: the stop timeout is shorter than %s's graceful stop", p.file, base)
		assert.LessOrEqual(t, p.stop, gracefulStop[base]+10*time.Second, "%s: the stop timeout keeps a hung %s far longer than its graceful stop", p.file, base)
		byName[p.name] = append(byName[p.name], p)
	}
	require.Len(t, byName, 2)
	for name, ps := range byName {
		require.Len(t, ps, 2, "%s: one systemd unit and one supervisor block", name)
		assert.Equal(t, ps[0].stop, ps[1].stop, "%s: %s and %s disagree on the stop timeout", name, ps[0].file, ps[1].file)
	}
}

// supervisorProgram returns the supervisor block of name.
func supervisorProgram(t *testing.T, name string) program {
	t.Helper()
	for _, p := range readPrograms(t) {
		if p.name == name && strings.HasPrefix(p.file, "supervisor/") {
			return p
		}
	}
	t.Fatalf("no supervisor block for %s", name)
	return program{}
}

// proc is a started deployment process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc runs args (binary base name first) from dir with env added to
// this process's environment. It is killed at cleanup if still running.
func startProc(t *testing.T, dir string, args []string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, filepath.Base(args[0])), args[1:]...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	require.NoError(t, cmd.Start())
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stopProc sends SIGTERM and waits up to limit for a clean exit, returning
// how long it took.
func stopProc(t *testing.T, p *proc, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		require.NoError(t, err, "exit after SIGTERM; log:\n%s", p.log.String())
	case <-time.After(limit):
		t.Fatalf("%s did not stop within its stop timeout %v; log:\n%s", p.cmd.Path, limit, p.log.String())
	}
	return time.Since(start)
}

// replaceArg returns args with the value of flag name replaced by v.
func replaceArg(t *testing.T, args []string, name, v string) []string {
	t.Helper()
	out := slices.Clone(args)
	for i, a := range out {
		if strings.TrimLeft(a, "-") == name && i+1 < len(out) {
			out[i+1] = v
			return out
		}
	}
	t.Fatalf("no flag -%s in %q", name, args)
	return nil
}

// argValue returns the value of flag name in args.
func argValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for i, a := range args {
		if strings.TrimLeft(a, "-") == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no flag -%s in %q", name, args)
	return ""
}

var urlRE = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)

// TestSupervisorSetupRuns runs what supervisor would: kafka-rest with its
// block's command line and environment (on a free loopback port), then the
// worker block's numprocs processes with their environment (the REST URL
// pointed at that port, the folder a temporary one). It checks the health
// endpoints, that the workers join the group with distinct stable member
// ids, and that each stops cleanly on SIGTERM within
// its stop timeout.
//
// The worker ids come from the -instance flag of the block's command line,
// with supervisord's %(process_num)02d expanded.
func TestSupervisorSetupRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	dir := binDir(t)
	rest := supervisorProgram(t, "kafka-rest")
	worker := supervisorProgram(t, "reports-worker")
	require.GreaterOrEqual(t, worker.procs, 2, "several worker processes")
	// supervisord starts lower priorities first and stops them last: the
	// workers must be stopped while kafka-rest is up, to commit and leave.
	require.Less(t, rest.prio, worker.prio, "kafka-rest starts before the workers and stops after them")

	restArgs := replaceArg(t, rest.args, "addr", "127.0.0.1:0")
	restArgs = replaceArg(t, restArgs, "data-dir", t.TempDir())
	server := startProc(t, dir, restArgs, rest.env)
	var url string
	require.Eventually(t, func() bool {
		m := urlRE.FindStringSubmatch(server.log.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 20*time.Second, 10*time.Millisecond, "kafka-rest logs its URL; log:\n%s", server.log.String())
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := get(t, url+path, "", "")
		assert.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}

	reportsDir := t.TempDir()
	var workers []*proc
	var want []string
	for i := range worker.procs {
		// supervisord's expansion of %(process_num)02d, in the command
		// line and the environment.
		expand := func(v string) string { return strings.ReplaceAll(v, "%(process_num)02d", padded(i)) }
		env := map[string]string{}
		for k, v := range worker.env {
			env[k] = expand(v)
		}
		env["UPSTASH_KAFKA_REST_URL"] = url
		args := replaceArg(t, worker.args, "dir", reportsDir)
		for j := range args {
			args[j] = expand(args[j])
		}
		want = append(want, argValue(t, args, "instance"))
		workers = append(workers, startProc(t, dir, args, env))
	}
	require.Len(t, want, worker.procs)
	slices.Sort(want)
	require.Len(t, slices.Compact(slices.Clone(want)), worker.procs, "distinct instance ids: %q", want)

	// The worker authenticates with the same pair as kafka-rest's admin.
	user, pass := rest.env["KAFKA_REST_USERNAME"], rest.env["KAFKA_REST_PASSWORD"]
	require.Equal(t, user, worker.env["UPSTASH_KAFKA_REST_USERNAME"])
	var got []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got = groupInstances(t, url, user, pass, "reports-worker")
		if slices.Equal(got, want) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling /consumers, bounded by the deadline
	}
	if !slices.Equal(want, got) {
		for i, w := range workers {
			t.Logf("worker %d log:\n%s", i, w.log.String())
		}
	}
	require.Equal(t, want, got, "the workers' member ids in group reports-worker")

	for i, w := range workers {
		took := stopProc(t, w, worker.stop)
		t.Logf("worker %d stopped on SIGTERM in %v (stopwaitsecs %v)", i, took.Round(time.Millisecond), worker.stop)
	}
	took := stopProc(t, server, rest.stop)
	t.Logf("kafka-rest stopped on SIGTERM in %v (stopwaitsecs %v)", took.Round(time.Millisecond), rest.stop)
}

func padded(i int) string {
	s := strconv.Itoa(i)
	if len(s) < 2 {
		s = "0" + s
	}
	return s
}

func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(t, err)
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// groupInstances returns the sorted instance names of group, from
// /consumers.
func groupInstances(t *testing.T, url, user, pass, group string) []string {
	t.Helper()
	code, body := get(t, url+"/consumers", user, pass)
	require.Equal(t, http.StatusOK, code, body)
	var groups []struct {
		Name      string `json:"name"`
		Instances []struct {
			Name string `json:"name"`
		} `json:"instances"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &groups), body)
	var names []string
	for _, g := range groups {
		if g.Name == group {
			for _, in := range g.Instances {
				names = append(names, in.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}
