//go:build linux

package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFitFiles: connections and, with a data dir, partitions share the
// file limit, fileReserve aside.
func TestFitFiles(t *testing.T) {
	for _, c := range []struct {
		soft                 uint64
		conns, parts         int
		durable              bool
		wantConns, wantParts int
	}{
		{0, 4096, 100_000, true, 4096, 100_000},       // limit unknown
		{1 << 40, 4096, 100_000, true, 4096, 100_000}, // unlimited
		{1 << 20, 4096, 100_000, true, 4096, 100_000}, // fits
		{200, 4096, 100_000, false, 136, 100_000},     // memory only: connections alone
		{65536, 4096, 100_000, false, 4096, 100_000},  //
		{65536, 4096, 100_000, true, 4096, 61_376},    // partitions get what connections leave
		{20_000, 4096, 100_000, true, 4096, 15_840},   //
		{200, 4096, 100_000, true, 68, 68},            // neither fits: half each
		{200, 50, 100_000, true, 50, 86},              // connections asked for fewer than half
		{200, 4096, 30, true, 106, 30},                // partitions asked for fewer than half
		{200, 50, 30, true, 50, 30},                   // both fit
		{64, 4096, 100_000, true, 4096, 100_000},      // no room at all: left alone
		{66, 4096, 100_000, true, 1, 1},               // one file of room
	} {
		conns, parts := fitFiles(c.soft, c.conns, c.parts, c.durable)
		assert.Equal(t, []int{c.wantConns, c.wantParts}, []int{conns, parts}, "%+v", c)
		if c.soft > fileReserve+1 && c.soft < 1<<31 {
			budget := int(c.soft) - fileReserve
			if c.durable {
				assert.LessOrEqual(t, conns+parts, max(budget, 2), "%+v", c)
			} else {
				assert.LessOrEqual(t, conns, budget, "%+v", c)
			}
		}
	}
}

// startUnderFileLimit runs kafka-rest with args under sh's ulimit -n
// nofile (soft and hard) and waits until it listens.
func startUnderFileLimit(t *testing.T, nofile int, args ...string) *child {
	t.Helper()
	_, err := exec.LookPath("sh")
	require.NoError(t, err, "the test runs kafka-rest under sh's ulimit")
	cmd := exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), kafkaRestBinary(t)}, args...)...)
	return startCmd(t, true, 30*time.Second, cmd)
}

// TestDataDirPartitionsFitTheFileLimit: with --data-dir each partition
// keeps its log segment open. Under a file limit of 200 (hard and soft),
// kafka-rest lowers --max-total-partitions and --max-connections so that
// both fit, saying so: a topic past the partition limit is refused with a
// 400 that names the limit (it was created until the process ran out of
// files, then a 500 "too many open files", and the accept loop failed on
// every new connection), and the topics made, old connections and new,
// go on working.
func TestDataDirPartitionsFitTheFileLimit(t *testing.T) {
	dir := t.TempDir()
	c := startUnderFileLimit(t, 200, "--addr", "127.0.0.1:0", "--data-dir", dir, "--fsync", "never", "--max-connections", "4096")
	// A default lowered is said at info (most file limits do not fit
	// 100,000 partitions: a plain start warns of nothing), a limit given
	// as a flag with a warning.
	require.Contains(t, c.logs.String(), `level=INFO msg="kafka-rest: --max-total-partitions lowered to fit the open file limit`)
	require.Contains(t, c.logs.String(), `asked=100000 now=68 file_limit=200`)
	require.Contains(t, c.logs.String(), `level=WARN msg="kafka-rest: --max-connections lowered to fit the open file limit"`)

	made := 0
	for i := range 150 {
		status, body := call(http.MethodGet, fmt.Sprintf("%s/produce/t%d/v", c.url, i), "")
		if status == http.StatusOK {
			require.Equal(t, made, i, "topic t%d made after a refusal", i)
			made++
			continue
		}
		require.Equal(t, http.StatusBadRequest, status, "t%d: %s", i, body)
		require.Contains(t, string(body), "would pass the broker's limit of 10000 topics and 68 partitions", "t%d", i)
	}
	require.Equal(t, 68, made)
	// Every topic made takes records, on this connection and on new ones.
	for i := range made {
		status, body := call(http.MethodGet, fmt.Sprintf("%s/produce/t%d/w", c.url, i), "")
		require.Equal(t, http.StatusOK, status, "t%d: %s", i, body)
	}
	for range 3 {
		fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := fresh.Get(c.url + "/produce/t0/x")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	status, body := call(http.MethodPost, c.url+"/fetch", `{"topic":"t67","partition":0,"offset":0}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, 2, strings.Count(string(body), `"offset"`), "%s", body)
	require.NotContains(t, c.logs.String(), "too many open files")
	c.stop()
}
