//go:build unix

package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// BUG (fixed): the seed's Laravel .env sets KAFKA_INSTANCE=default_instance,
// one value for every process of the app. claimIdentity took it as is, so
// the README's two workers started from that environment were twins: the
// second fenced the first (its Serve stopped with ErrFenced), and a
// supervisor restarting the fenced one made it fence the other, forever,
// each takeover dropping uncommitted work to be redone. The slot locks that
// keep two workers of one folder apart were skipped whenever the variable
// was set. Now the env value is taken under a lock of its own; a second
// live process of the role in the folder falls back to a slot.
func TestBreak5EnvInstanceSharedByTwoWorkersMakesTwins(t *testing.T) {
	t.Setenv(envInstance, "default_instance")
	dir := t.TempDir()
	a, err := claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	defer a.release()
	b, err := claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	defer b.release()
	assert.Equal(t, "default_instance", a.id)
	assert.NotEqual(t, a.id, b.id, "two live workers of one folder got the same id from KAFKA_INSTANCE: twins that fence each other")
	assert.True(t, strings.HasPrefix(b.id, "worker-1."), b.id)
	assert.Contains(t, b.source, "held by another running worker")

	// The web app (another group) may share the value.
	w, err := claimIdentity(dir, "web", "")
	require.NoError(t, err)
	defer w.release()
	assert.Equal(t, "default_instance", w.id)

	// A restarted worker (the first one ended) takes the value again.
	a.release()
	again, err := claimIdentity(dir, "worker", "")
	require.NoError(t, err)
	defer again.release()
	assert.Equal(t, "default_instance", again.id)
}

// BUG (fixed: the id now carries a hash of the folder): slot ids are "<role>-<n>@<host>", but a slot is only
// locked within its folder. Two workers on one host with different -dir
// (two checkouts on a dev box; two containers with network_mode: host,
// which share the host's name but not their volumes) both get
// "worker-1@<host>": twins, which fence each other over one group, the
// same ping-pong as above. The README only warns about hosts whose name
// changes. A fix needs the folder in the id (a short hash of its absolute
// path) or the locks in a host-wide place; both change the documented id.
func TestBreak5SlotIDsCollideAcrossFolders(t *testing.T) {
	t.Setenv(envInstance, "")
	a, err := claimIdentity(t.TempDir(), "worker", "")
	require.NoError(t, err)
	defer a.release()
	b, err := claimIdentity(t.TempDir(), "worker", "")
	require.NoError(t, err)
	defer b.release()
	assert.NotEqual(t, a.id, b.id, "two live workers on one host, each with its own folder, share the id %q", a.id)
}

// A folder where no lock file can be made does not stop a process whose id
// comes from KAFKA_INSTANCE (it did not need the folder for its id before).
func TestBreak5EnvInstanceWithoutLockableFolder(t *testing.T) {
	t.Setenv(envInstance, "pod-1")
	id, err := claimIdentity(t.TempDir()+"/missing/deeper", "worker", "")
	require.NoError(t, err)
	defer id.release()
	assert.Equal(t, "pod-1", id.id)
}
