//go:build linux

package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreak5RestartSkipsRecordsOfAnUncommittedGroup: a REST consumer joins
// group g (auto.offset.reset latest, the default) on a topic that already
// holds a record: the group's start is resolved to offset 1, and the broker
// promises that every record produced after the join is delivered to the
// group. A record is produced (offset 1) and acknowledged, then kafka-rest
// is SIGKILLed before the consumer fetched or committed anything. After the
// restart, the same consumer (same group and instance) comes back.
//
// BUG: the group's resolved start position lives only in memory (only
// committed offsets go to meta.log), so after the restart the group
// resolves "latest" again, now 2, and the acknowledged record at offset 1
// is never delivered to it: silently skipped. A Kafka broker restart never
// does this (the position is the client's); the issue names "every reply
// not yet read" as what a restart must stop losing, and rpc.Client's reply
// reader over a transport without Tail is exactly such a group (unique
// name, StartLatest, no commits), so a reply produced just before the
// crash is lost (WithResend hides it; without it the call times out).
// Fix direction: record a group's first resolved position per partition
// in meta.log (a new entry kind, cleared with the group) and restore it.
func TestBreak5RestartSkipsRecordsOfAnUncommittedGroup(t *testing.T) {
	t.Skip("BUG: a group's resolved start position is not persisted; after a restart it resolves latest again and skips acknowledged records (see the comment)")
	dir, addr := t.TempDir(), freeAddr(t)
	args := []string{"--addr", addr, "--data-dir", dir, "--topics", "t:1"}
	c := startChild(t, true, args...)
	status, body := call("POST", c.url+"/produce/t", `{"value":"before"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = call("POST", c.url+"/consume/g/i", `{"topic":"t","timeout":100}`)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "[]", string(body), "latest: the old record is not for this group")
	status, body = call("POST", c.url+"/produce/t", `{"value":"after-join"}`)
	require.Equal(t, http.StatusOK, status, string(body))
	c.kill()

	c2 := startChild(t, true, args...)
	var got string
	for range 5 {
		status, body = call("POST", c2.url+"/consume/g/i", `{"topic":"t","timeout":200}`)
		require.Equal(t, http.StatusOK, status, string(body))
		if string(body) != "[]" {
			got = string(body)
			break
		}
	}
	assert.Contains(t, got, "after-join", "an acknowledged record produced after the group joined was skipped after the restart")
}
