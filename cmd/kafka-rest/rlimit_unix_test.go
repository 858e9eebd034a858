//go:build unix

package main

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRaiseFileLimit: the soft limit on open files ends at the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	soft, err := raiseFileLimit()
	require.NoError(t, err)
	if soft == 0 {
		t.Skip("no RLIMIT_NOFILE here")
	}
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	assert.Equal(t, lim.Max, lim.Cur)
	assert.Equal(t, uint64(lim.Cur), soft)
}
