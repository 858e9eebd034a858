package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBench(t *testing.T) {
	t.Parallel()
	s := startService(t)
	start(t, s.env, "serve", "reports", "--echo", "--concurrency", "8")

	r := runCLI(t, s.env, "", "bench", "reports", `{"x":1}`, "--requests", "200", "--concurrency", "4", "--json", "--progress", "10ms")
	require.Equal(t, 0, r.code)
	lines := jsonLines(t, r.stdout)
	require.Len(t, lines, 1)
	b := lines[0]
	assert.Equal(t, 200.0, b["calls"])
	assert.Equal(t, 0.0, b["failed"])
	assert.Equal(t, 4.0, b["concurrency"])
	p50, p99 := b["p50_ms"].(float64), b["p99_ms"].(float64)
	assert.Greater(t, p50, 0.0)
	assert.GreaterOrEqual(t, p99, p50)
	assert.InDelta(t, b["calls"].(float64)/b["seconds"].(float64), b["calls_per_sec"], 0.01)
	assert.Contains(t, r.stderr, "calls/s", "the progress line")
	assert.True(t, strings.HasSuffix(r.stderr, "\n"), "the last progress line is ended")

	// By duration, in text.
	started := time.Now()
	r = runCLI(t, s.env, "", "bench", "reports", "--duration", "1s", "--progress", "100ms")
	require.Equal(t, 0, r.code)
	assert.Less(t, time.Since(started), 20*time.Second)
	assert.Regexp(t, `^\d+ calls in \d+\.\d\ds with 8 callers: \d+\.\d calls/s, p50 \S+, p99 \S+\n$`, r.stdout)
	assert.GreaterOrEqual(t, strings.Count(r.stderr, "\r"), 3, "progress updated while running")

	// A service that answers nothing: the first call says so, exit 1.
	r = runCLI(t, s.env, "", "bench", "idle", "--timeout", "300ms")
	oneLineErr(t, r, 1, "the first call failed", "deadline_exceeded")
}
