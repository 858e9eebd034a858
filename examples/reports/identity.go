package main

import (
	"errors"
	"fmt"
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
// The id comes, first found, from -instance, from KAFKA_INSTANCE, or from a
// slot in the reports folder: "<role>-<n>@<host>" for the lowest n whose lock
// file (-dir/.<role>-<n>.lock) no running process holds. The lock is held
// for the life of the process and released by the kernel however the
// process ends, SIGKILL included, so a restarted process takes its slot (or
// a free one) again, and two live processes sharing a folder (the README's
// two workers) never share an id: twins would fence each other.

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
	if v := os.Getenv(envInstance); v != "" {
		return identity{id: v, source: envInstance, release: func() {}}, nil
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
			return identity{id: fmt.Sprintf("%s-%d@%s", role, n, host), source: path, release: release}, nil
		}
	}
	return identity{}, fmt.Errorf("all %d instance slots of %s in %s are taken: give -instance", maxSlots, role, dir)
}
