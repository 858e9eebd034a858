package upstash

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BUG (fixed: rpc now makes the fresh id itself): rpc.WithInstance says
// "WithInstance("") asks for the fresh id whatever the environment says",
// and WithNoticeInstance says "KAFKA_INSTANCE is not read here". Over the
// transport that the seed's environment configures, upstash.FromEnv, both
// are false: FromEnv makes KAFKA_INSTANCE the transport's default instance
// (WithInstance), and the transport gives it to every Subscription whose
// Instance is empty, which is what rpc sends for the "fresh id". With the
// seed's .env (KAFKA_INSTANCE=default_instance in every process), two
// processes that opted out of static membership with WithInstance("") are
// still twins, and since each Subscribe now sends its own incarnation
// token, the later one fences the earlier: its Serve stops with
// ErrFenced. (Before the incarnation header, the two shared one REST
// instance and both kept serving.) The same holds for the OnNotice group
// of two clients of one name: one notice reader stops.
//
// A fix: rpc makes the fresh id itself ("<name>-<uuid>") instead of
// sending "", or the transport's env default stops applying to rpc.
func TestBreak5WithInstanceEmptyStillTakesKafkaInstanceOverFromEnv(t *testing.T) {
	srv := startServer(t, serverConfig{broker: []memory.Option{memory.WithTopic("jobs", 2)}})
	t.Setenv(EnvURL, srv.URL)
	t.Setenv(EnvLegacyInstance, "default_instance")
	quiet := rpc.WithLogger(slog.New(slog.DiscardHandler))
	var runs [2]atomic.Int64
	done := make([]chan error, 2)
	for i := range 2 {
		tr, err := FromEnv(fastBackoff)
		require.NoError(t, err)
		t.Cleanup(func() { tr.Close() })
		s, err := rpc.NewServer(tr, rpc.WithName("jobs-srv"), rpc.WithInstance(""), quiet)
		require.NoError(t, err)
		rpc.Handle(s, "jobs", func(_ context.Context, n int) (int, error) { runs[i].Add(1); return n + 1, nil })
		ctx, cancel := context.WithCancel(context.Background())
		done[i] = make(chan error, 1)
		returned := make(chan struct{})
		go func() { done[i] <- s.Serve(ctx); close(returned) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-returned:
			case <-time.After(20 * time.Second):
				t.Error("Serve did not return")
			}
		})
		// Let the first one join before the second starts.
		c, err := rpc.NewClient(newTestTransport(t, srv.URL), rpc.WithName("caller"), quiet)
		require.NoError(t, err)
		got, err := rpc.Call[int](t.Context(), c, "jobs", 1)
		require.NoError(t, err)
		require.Equal(t, 2, got)
		c.Close()
	}
	select {
	case err := <-done[0]:
		t.Fatalf("a server that asked for a fresh id (WithInstance(\"\")) was fenced by another process: %v", err)
	case <-time.After(time.Second):
	}
	var servers []string // the dedup readers' groups are per process, so only the server group counts
	for _, in := range srv.instances(t) {
		if strings.HasPrefix(in, "jobs-srv/") {
			servers = append(servers, in)
		}
	}
	assert.Len(t, servers, 2, "two servers with fresh ids are two instances")
}
