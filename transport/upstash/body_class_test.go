package upstash

import "testing"

// A body's class must hold it (its buffers are at least as large), and be
// the smallest that does, so that a batch body takes a buffer of its own
// size and a single call's body does not take a batch's.
func TestBodyClassIsTheSmallestThatHolds(t *testing.T) {
	for _, size := range []int{0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 40_000, 1<<19 + 1, 1 << 20} {
		cl := bodyClass(size)
		if cl < 0 || cl >= bodyClasses {
			t.Fatalf("bodyClass(%d) = %d, out of [0, %d)", size, cl, bodyClasses)
		}
		if got := minPooledBody << cl; got < size {
			t.Errorf("bodyClass(%d) = %d, whose buffers hold %d bytes", size, cl, got)
		}
		if cl > 0 && minPooledBody<<(cl-1) >= size {
			t.Errorf("bodyClass(%d) = %d, but class %d holds it", size, cl, cl-1)
		}
	}
	if cl := bodyClass(maxPooledBody + 1); cl != bodyClasses {
		t.Errorf("bodyClass(maxPooledBody+1) = %d, want %d (no class)", cl, bodyClasses)
	}
	// A body released with the capacity append grew it to goes to a class
	// whose every buffer it can stand for.
	s := newSharedBody(3000, true)
	if cap(s.bytes()) < 3000 {
		t.Fatalf("newSharedBody(3000): capacity %d", cap(s.bytes()))
	}
	s.set(append(s.bytes()[:0], make([]byte, 5000)...)) // grown past its class
	s.release()
	if r := newSharedBody(5000, true); cap(r.bytes()) < 5000 {
		t.Errorf("newSharedBody(5000) after a release: capacity %d", cap(r.bytes()))
	}
}
