//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
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
	dir := t.TempDir()
	const parts = 200
	c := startChild(t, true, "--addr", "127.0.0.1:0", "--data-dir", dir, "--fsync", "never",
		"--topics", fmt.Sprintf("a:%d,b:%d", parts/2, parts/2))
	c.stop()

	c = startUnderFileLimit(t, 200, "--addr", "127.0.0.1:0", "--data-dir", dir, "--fsync", "never")
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

// TestProxyInstancesFitTheFileLimit: in front of Kafka each consumer
// instance is a client of its own, holding connections to the brokers (4
// against a one-broker cluster). Under a file limit of 200 kafka-rest
// lowers --max-instances with --max-connections so that both fit: past it
// a new instance is a 503 naming the limit, and the process keeps
// accepting connections. The 47th instance ran the process out of files:
// its consume hung until the client gave up (then a 503 "did not assign
// partitions in time"), and the accept loop failed meanwhile with "too
// many open files".
func TestProxyInstancesFitTheFileLimit(t *testing.T) {
	brokers := startKfake(t, kfake.SeedTopics(1, "orders"))
	c := startUnderFileLimit(t, 200, "--addr", "127.0.0.1:0", "--brokers", brokers)
	require.Contains(t, c.logs.String(), `--max-instances lowered to fit the open file limit`)
	require.Contains(t, c.logs.String(), `asked=1000 now=17 files_each=4 file_limit=200`)

	quick := &http.Client{Timeout: 3 * time.Second}
	made := 0
	for i := range 60 {
		resp, err := quick.Post(fmt.Sprintf("%s/consume/g%d/i", c.url, i), "application/json", strings.NewReader(`{"topic":"orders","timeout":0}`))
		require.NoError(t, err, "instance %d (%d made)", i, made)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			require.Equal(t, made, i, "instance %d made after a refusal", i)
			made++
			continue
		}
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "instance %d: %s", i, body)
		require.Contains(t, string(body), "too many consumer instances", "instance %d", i)
	}
	require.Equal(t, 17, made, "(200-64)/2 files for connections, 4 for each instance")
	fresh := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		resp, err := fresh.Get(c.url + "/topics")
		require.NoError(t, err, "a new connection")
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NotContains(t, c.logs.String(), "too many open files")
	c.stop()
}

// TestFitShare: in front of Kafka, connections and consumer instances
// (files each) share the file limit, fileReserve aside, as connections and
// partitions do with a data dir.
func TestFitShare(t *testing.T) {
	for _, c := range []struct {
		soft             uint64
		conns, n, each   int
		wantConns, wantN int
	}{
		{0, 4096, 1000, 4, 4096, 1000},       // limit unknown
		{1 << 20, 4096, 1000, 4, 4096, 1000}, // fits
		{200, 4096, 1000, 4, 68, 17},         // neither fits: half each
		{200, 50, 1000, 4, 50, 21},           // connections asked for fewer than half
		{200, 4096, 10, 4, 96, 10},           // instances asked for fewer than half
		{200, 4096, 1000, 200, 68, 1},        // at least one instance
		{200, 4096, 0, 4, 136, 0},            // connections alone
	} {
		conns, n := fitShare(c.soft, c.conns, c.n, c.each)
		assert.Equal(t, []int{c.wantConns, c.wantN}, []int{conns, n}, "%+v", c)
	}
}
