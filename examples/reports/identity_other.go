//go:build !unix

package main

// lockSlot cannot lock here: the caller falls back to a fresh id.
func lockSlot(string) (func(), bool, error) { return nil, false, errNoSlotLocks }
