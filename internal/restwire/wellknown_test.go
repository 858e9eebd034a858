package restwire

import "testing"

// The envelope's header keys and values decode to constants, without an
// allocation; anything else is not claimed.
func TestWellKnown(t *testing.T) {
	for _, s := range []string{"rpc-v", "rpc-id", "rpc-kind", "rpc-from", "rpc-reply-to", "rpc-correlation-id",
		"rpc-timeout-ms", "rpc-dedup-of", "rpc-dedup-by", "content-type", "application/json", "1", "request", "reply"} {
		b := []byte(s)
		got, ok := wellKnown(b)
		if !ok || got != s {
			t.Errorf("wellKnown(%q) = %q, %v", s, got, ok)
		}
		if n := testing.AllocsPerRun(100, func() { wellKnown(b) }); n != 0 {
			t.Errorf("wellKnown(%q): %v allocations", s, n)
		}
	}
	for _, s := range []string{"", "rpc-", "RPC-V", "2", "request ", "x"} {
		if got, ok := wellKnown([]byte(s)); ok {
			t.Errorf("wellKnown(%q) = %q, true; want not known", s, got)
		}
	}
}
