package restwire

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (the break7
// tests decode from many goroutines at once).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
