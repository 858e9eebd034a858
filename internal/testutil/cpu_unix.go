//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// ProcessCPU returns the CPU time the process has used so far, user and
// system, of every goroutine; 0 if it cannot be read. Benchmarks report it
// per operation: on a shared machine it varies far less than a rate, which
// depends on the CPU the other tenants leave.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
