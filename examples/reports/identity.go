package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
)

// Stable identities: a worker or web app that crashed and is started again
// should come back as the same consumer group member (static membership),
// so that it takes its partitions back at once and reads them from the
// committed offsets, instead of the group waiting minutes for the dead
// member to be dropped while its requests or notices wait.
//
// The id comes, first found, from -instance, from KAFKA_INSTANCE (unless a
// running process of the role in the same folder already holds that value:
// the seed's .env gives every process the same one), or from a slot in the
// reports folder: "<role>-<n>.<tag>@<host>" for the lowest n whose lock
// file (-dir/.<role>-<n>.lock) no running process holds. The lock is held
// for the life of the process and released by the kernel however the
// process ends, SIGKILL included, so a restarted process takes its slot (or
// a free one) again, and two live processes sharing a folder (the README's
// two workers) never share an id: twins would fence each other. The tag
// is a short hash of the folder's absolute path: a slot is locked only
// within its folder, so two workers on one host with different folders
// (two checkouts, containers sharing the host's name) must not both be
// "worker-1@host".

// envInstance is the seed's variable for an instance id, also read by
// rpc.NewServer when no WithInstance is given.
const envInstance = "KAFKA_INSTANCE"

// maxSlots bounds the slots tried in one folder.
const maxSlots = 64

// errNoSlotLocks: the platform has no advisory file locks (see
// identity_other.go); the caller falls back to a fresh id per start.
var errNoSlotLocks = errors.New("no advisory file locks on this platform")

// identity is a claimed instance id; release gives back its slot, if any.
type identity struct {
	id      string // "": a fresh id per start (no static membership)
	source  string // "-instance", KAFKA_INSTANCE or the slot's lock file
	release func()
}

// claimIdentity returns the instance id of role (worker, web) for a process
// whose reports folder is dir: explicit when not empty, else
// KAFKA_INSTANCE, else a slot in dir.
func claimIdentity(dir, role, explicit string) (identity, error) {
	if explicit != "" {
		return identity{id: explicit, source: "-instance", release: func() {}}, nil
	}
	envSource := ""
	if v := os.Getenv(envInstance); v != "" {
		// The seed's .env sets KAFKA_INSTANCE=default_instance for every
		// process of the app, so two workers started from it would be
		// twins and fence each other (one of them stops; restarted by a
		// supervisor, it fences the other: forever). Take the id only if
		// no running process of this role in this folder holds it; else
		// a slot, as without the variable.
		path := filepath.Join(dir, fmt.Sprintf(".%s-id-%x.lock", role, sha256.Sum256([]byte(v))))
		release, ok, err := lockSlot(path)
		switch {
		case err != nil:
			// No locks here, or none in this folder: the variable as
			// given, as before.
			return identity{id: v, source: envInstance, release: func() {}}, nil
		case ok:
			return identity{id: v, source: envInstance, release: release}, nil
		}
		envSource = fmt.Sprintf(" (%s=%q is held by another running %s in this folder)", envInstance, v, role)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.Map(func(r rune) rune {
		if r <= ' ' || r == '/' || r == 0x7f {
			return '-'
		}
		return r
	}, host)
	for n := 1; n <= maxSlots; n++ {
		path := filepath.Join(dir, fmt.Sprintf(".%s-%d.lock", role, n))
		release, ok, err := lockSlot(path)
		if errors.Is(err, errNoSlotLocks) {
			return identity{source: "none (no file locks here: give -instance for a stable id)", release: func() {}}, nil
		}
		if err != nil {
			return identity{}, fmt.Errorf("instance slot %s: %w", path, err)
		}
		if ok {
			return identity{id: fmt.Sprintf("%s-%d.%s@%s", role, n, folderTag(dir), host), source: path + envSource, release: release}, nil
		}
	}
	return identity{}, fmt.Errorf("all %d instance slots of %s in %s are taken: give -instance", maxSlots, role, dir)
}

// folderTag is 6 hex digits of the FNV-1a hash of dir's absolute path.
func folderTag(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	h := fnv.New32a()
	h.Write([]byte(filepath.Clean(dir)))
	return fmt.Sprintf("%06x", h.Sum32()&0xffffff)
}
