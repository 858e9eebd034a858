//go:build unix

package main

import "syscall"

// raiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to the
// hard limit, so that the connection limit, not the descriptor limit, is
// what bounds connections, and returns the soft limit now in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return uint64(lim.Cur), err
		}
		lim = raised
	}
	return uint64(lim.Cur), nil
}
