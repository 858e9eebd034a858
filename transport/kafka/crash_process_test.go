package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// Environment of the server process started by TestServerProcessSIGKILL.
const (
	envCrashBrokers = "KAFKARPC_TEST_CRASH_BROKERS"
	envCrashPrefix  = "KAFKARPC_TEST_CRASH_PREFIX"
	envCrashEffects = "KAFKARPC_TEST_CRASH_EFFECTS"
)

// TestCrashServerProcess is not a test on its own: it is the server
// process that TestServerProcessSIGKILL starts (this test binary run again)
// and kills. It serves until killed, writing one line per handled request
// to the effects file (its side effect).
func TestCrashServerProcess(t *testing.T) {
	brokers := os.Getenv(envCrashBrokers)
	if brokers == "" {
		t.Skip("the server process of TestServerProcessSIGKILL; runs only when that test starts it")
	}
	prefix := os.Getenv(envCrashPrefix)
	effects, err := os.OpenFile(os.Getenv(envCrashEffects), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	tr, err := kafka.New(kafka.Brokers(kafka.SplitBrokers(brokers)...), kafka.AutoCreateTopics(testPartitions, -1))
	require.NoError(t, err)
	s, err := rpc.NewServer(tr, rpc.WithName(prefix+"-srv"), rpc.WithInstance(prefix+"-srv-1"),
		rpc.WithSessionTimeout(time.Second), rpc.WithConcurrency(8), rpc.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	rpc.Handle(s, prefix+"-jobs", func(ctx context.Context, n int) (int, error) {
		time.Sleep(time.Duration(1+n%3) * time.Millisecond) // the work
		if _, err := fmt.Fprintf(effects, "%s\n", rpc.RequestID(ctx)); err != nil {
			return 0, err
		}
		return n, nil
	})
	fmt.Println("serving") // the parent waits for this line
	_ = s.Serve(context.Background())
}

// A server process killed with SIGKILL in the middle of a run, twice, and
// started again with the same instance id (static membership: the new
// process takes the partitions at once): every request sent gets exactly
// one completion notice. Side effects of a request may happen twice only
// when the kill fell between a handler's effect and its dedup marker, so
// duplicates are bounded by the handlers in flight at each kill.
func TestServerProcessSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	c := newFake(t)
	brokers := strings.Join(c.ListenAddrs(), ",")
	prefix := "sigkill-" + uuid.NewString()[:8]
	effectsPath := filepath.Join(t.TempDir(), "effects")

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashServerProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashBrokers+"="+brokers, envCrashPrefix+"="+prefix, envCrashEffects+"="+effectsPath)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "serving" {
					close(ready)
				}
			}
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("server process not serving within 30s")
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
	}

	tr := newTransport(t, c.ListenAddrs())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := rpc.NewClient(tr, rpc.WithName(prefix+"-cli"), rpc.WithLogger(quiet))
	require.NoError(t, err)
	defer cl.Close()
	var mu sync.Mutex
	notices := map[string]int{}
	answered := make(chan struct{}, 10000)
	require.NoError(t, cl.OnNotice(func(_ context.Context, r *rpc.Reply) error {
		if r.Kind != rpc.KindReply {
			return nil
		}
		mu.Lock()
		notices[r.CorrelationID]++
		mu.Unlock()
		answered <- struct{}{}
		return nil
	}))

	const requests, kills = 600, 2
	cmd := start()
	ids := make([]string, 0, requests)
	for i := range requests {
		id, err := cl.Send(context.Background(), prefix+"-jobs", i, rpc.WithKey(fmt.Sprint(i)))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	got := 0
	waitFor := func(n int) {
		deadline := time.After(90 * time.Second)
		for got < n {
			select {
			case <-answered:
				got++
			case <-deadline:
				t.Fatalf("%d of %d requests answered", got, requests)
			}
		}
	}
	for k := 1; k <= kills; k++ {
		waitFor(requests * k / (kills + 1))
		kill(cmd)
		cmd = start()
	}
	waitFor(requests)
	kill(cmd)

	raw, err := os.ReadFile(effectsPath)
	require.NoError(t, err)
	effects := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		effects[line]++
	}
	mu.Lock()
	defer mu.Unlock()
	once, missing, twice := 0, 0, 0
	for _, id := range ids {
		switch notices[id] {
		case 0:
			missing++
		case 1:
			once++
		default:
			t.Errorf("request %s got %d completion notices", id, notices[id])
		}
		if effects[id] > 1 {
			twice++
		}
	}
	assert.Equal(t, requests, once, "requests answered exactly once")
	assert.Zero(t, missing)
	assert.LessOrEqual(t, twice, 8*kills, "side effects run twice: at most the handlers in flight at each kill")
	t.Logf("SIGKILL x%d: %d/%d answered once, %d missing, %d side effects run twice", kills, once, requests, missing, twice)
}
