//go:build unix

package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two live processes sharing a folder get different slots; a slot given
// back (the process ended, however) is taken again by the next start;
// -instance and then KAFKA_INSTANCE win over slots.
func TestClaimIdentity(t *testing.T) {
	t.Setenv(envInstance, "")
	dir := t.TempDir()
	host, _ := os.Hostname()

	a, err := claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	b, err := claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	w, err := claimIdentity(dir, "web", "")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(a.id, "worker-1."), a.id)
	assert.True(t, strings.HasPrefix(b.id, "worker-2."), b.id)
	assert.True(t, strings.HasPrefix(w.id, "web-1."), w.id)
	if host != "" && !strings.ContainsAny(host, " /") {
		assert.Equal(t, "worker-1."+folderTag(dir)+"@"+host, a.id)
	}

	a.release() // the first worker ends: its restart takes slot 1 again
	again, err := claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	assert.Equal(t, a.id, again.id)
	again.release()
	b.release()
	w.release()

	got, err := claimIdentity(dir, "worker", "w-explicit")
	require.NoError(t, err)
	assert.Equal(t, "w-explicit", got.id)
	t.Setenv(envInstance, "w-env")
	got, err = claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	assert.Equal(t, "w-env", got.id)
	got, err = claimIdentity(dir, "worker", "w-explicit")
	require.NoError(t, err)
	assert.Equal(t, "w-explicit", got.id)

	// A folder that cannot hold the lock files is a clear error.
	t.Setenv(envInstance, "")
	_, err = claimIdentity(dir+"/missing/deeper", "worker", "")
	require.ErrorContains(t, err, "instance slot")
}
