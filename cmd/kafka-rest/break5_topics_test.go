//go:build linux

package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreak5RestartWithNewPartitionsDefaultKeepsNamedTopic: a topic named
// in --topics WITHOUT a count gets --partitions when it is created. With a
// data dir it exists at the next start, and an operator who raises
// --partitions (for the auto-created topics to come) must still be able to
// restart: the topic keeps the count it was created with, as on Kafka.
// Bug: parseTopics filled the missing count with the new default, so
// CreateTopic("jobs", 4) met the stored "jobs" with 1 partition and
// kafka-rest refused to start on its own data dir ("exists with 1").
func TestBreak5RestartWithNewPartitionsDefaultKeepsNamedTopic(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, true, "--addr", "127.0.0.1:0", "--data-dir", dir, "--topics", "jobs")
	status, body := call("POST", c.url+"/produce/jobs", `{"value":"kept"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	c.kill()

	c2 := startChild(t, false, "--addr", "127.0.0.1:0", "--data-dir", dir, "--topics", "jobs", "--partitions", "4")
	waitUntil(t, 30e9, func() bool {
		select {
		case <-c2.exited:
			return true
		default:
		}
		return listenRE.MatchString(c2.logs.String())
	}, "kafka-rest listening or exited")
	m := listenRE.FindStringSubmatch(c2.logs.String())
	require.NotNil(t, m, "kafka-rest refused to restart on its data dir after --partitions changed:\n%s", c2.logs.String())
	c2.url = m[1]
	assert.Equal(t, map[int64]string{0: "kept"}, fetchAll(t, c2.url, "jobs", 0))
	status, body = call("POST", c2.url+"/produce/jobs", `{"value":"x","partition":1}`)
	assert.NotEqual(t, http.StatusOK, status, "jobs keeps 1 partition: %s", body)
	// A topic new at this start gets the new default.
	status, body = call("POST", c2.url+"/produce/fresh", fmt.Sprintf(`{"value":"y","partition":%d}`, 3))
	assert.Equal(t, http.StatusOK, status, string(body))
}
