package restserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// sdkDir holds the Node project that pins the official @upstash/kafka SDK.
// Install it with: (cd restserver/testdata/sdk && npm ci)
var sdkDir = filepath.Join("testdata", "sdk")

// TestUpstashSDK runs testdata/sdk/run.mjs, which drives the official
// @upstash/kafka SDK against this server over loopback: produce, consume
// with the SDK tests' retry loop, commit, committed, fetch, offsets, topics,
// consumers, delete-consumer and auth errors. Without node or the installed
// SDK it skips, unless KAFKARPC_REQUIRE_NODE=1 (as in CI), then it fails.
func TestUpstashSDK(t *testing.T) {
	t.Parallel()
	missing := func(why string) {
		if os.Getenv("KAFKARPC_REQUIRE_NODE") == "1" {
			t.Fatalf("KAFKARPC_REQUIRE_NODE=1 but %s; run: (cd restserver/testdata/sdk && npm ci)", why)
		}
		t.Skipf("skipping the @upstash/kafka SDK test: %s; run (cd restserver/testdata/sdk && npm ci) to enable it", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(sdkDir, "node_modules", "@upstash", "kafka", "package.json")); err != nil {
		missing("the SDK is not installed in " + sdkDir)
	}

	e := newEnv(t, envConfig{broker: []memory.Option{
		memory.WithTopic("sdk-events", 3), memory.WithTopic("sdk-other", 1), memory.WithAutoCreate(false)}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(),
		"UPSTASH_KAFKA_REST_URL="+e.url+"/", // the SDK strips one trailing slash
		"UPSTASH_KAFKA_REST_USERNAME="+testUser,
		"UPSTASH_KAFKA_REST_PASSWORD="+testPass,
		"SDK_TOPIC=sdk-events",
		"SDK_TOPIC2=sdk-other",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node run.mjs:\n%s", out)
	require.NoError(t, err)
	require.Contains(t, string(out), "all SDK checks passed")
}
