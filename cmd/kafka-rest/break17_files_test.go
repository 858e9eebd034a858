//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDataDirOverTheFileLimitKeepsServing: a data dir holding more
// partitions (200) than a file limit of 200 leaves room for (68) is
// started under that limit and every partition is written, twice. Each
// produce is acknowledged, new connections are accepted, and what was
// acknowledged is there after a restart. The broker opened a segment file
// per partition on its first append until the process ran out of files: a
// 507 "too many open files" for the 189th partition on, and the accept loop
// then failed on every new connection (clients hung until their timeout).
func TestDataDirOverTheFileLimitKeepsServing(t *testing.T) {
	_, err := exec.LookPath("sh")
	require.NoError(t, err, "the test runs kafka-rest under sh's ulimit")
	dir := t.TempDir()
	const parts = 200
	c := startChild(t, true, "--addr", "127.0.0.1:0", "--data-dir", dir, "--fsync", "never",
		"--topics", fmt.Sprintf("a:%d,b:%d", parts/2, parts/2))
	c.stop()

	cmd := exec.Command("sh", "-c", `ulimit -n 200 && exec "$0" "$@"`, kafkaRestBinary(t),
		"--addr", "127.0.0.1:0", "--data-dir", dir, "--fsync", "never")
	c = startCmd(t, true, 30*time.Second, cmd)
	require.Contains(t, c.logs.String(), `the data dir holds more partitions than --max-total-partitions allows`)
	for _, v := range []string{"v", "w"} {
		for i := range parts {
			rec := fmt.Sprintf(`{"topic":%q,"partition":%d,"value":%q}`, []string{"a", "b"}[i%2], i/2, v)
			status, body := call(http.MethodPost, c.url+"/produce", rec)
			require.Equal(t, http.StatusOK, status, "%s: %s", rec, body)
		}
	}
	fresh := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		resp, err := fresh.Post(c.url+"/produce", "application/json", strings.NewReader(`{"topic":"a","partition":0,"value":"x"}`))
		require.NoError(t, err, "a new connection")
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NotContains(t, c.logs.String(), "too many open files")
	c.stop()

	c = startChild(t, true, "--addr", "127.0.0.1:0", "--data-dir", dir, "--fsync", "never")
	var tpos []string
	want := map[string][]string{}
	for _, tp := range []string{"a", "b"} {
		for p := range parts / 2 {
			tpos = append(tpos, fmt.Sprintf(`{"topic":%q,"partition":%d,"offset":0}`, tp, p))
			want[fmt.Sprintf("%s/%d", tp, p)] = []string{"v", "w"}
		}
	}
	want["a/0"] = []string{"v", "w", "x", "x", "x"}
	status, body := call(http.MethodPost, c.url+"/fetch", `{"timeout":0,"topicPartitionOffsets":[`+strings.Join(tpos, ",")+`]}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var recs []fetchedRecord
	require.NoError(t, json.Unmarshal(body, &recs))
	got := map[string][]string{}
	for _, r := range recs {
		k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
		require.Equal(t, int64(len(got[k])), r.Offset, "%s", k)
		got[k] = append(got[k], r.Value)
	}
	require.Equal(t, want, got)
}
