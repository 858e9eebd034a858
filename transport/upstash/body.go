package upstash

import (
	"bytes"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
)

// sharedBody is a request body in a pooled buffer (produce bodies: one per
// Produce call, and one per coalesced batch). Its buffer goes back to the
// pool once its owner has released it and every reader made of it has
// been closed: net/http's RoundTrip may read a request body after it
// returns, but not after closing it. A reader that is never closed (a
// request that never reached RoundTrip) keeps the buffer out of the pool,
// which is safe: the garbage collector takes it.
//
// Only the transport's own HTTP client is trusted with pooled bodies: a
// caller's RoundTripper may not keep that contract, and with one the body
// is an ordinary allocation (pooled is false) that never goes to the pool.
type sharedBody struct {
	buf    []byte
	pooled bool
	refs   atomic.Int32
}

// maxPooledBody is the largest body buffer kept for reuse.
const maxPooledBody = 1 << 20

// minPooledBody is the smallest: the first class of bodyPools.
const minPooledBody = 1 << 10

// bodyPools hold released sharedBodies, each with its buffer, by size
// class: class i holds buffers of at least minPooledBody<<i bytes'
// capacity, so that a body costs no allocation when a buffer of its class
// was released. One pool for every size would hand a coalesced batch's
// body (tens of KiB at 256 callers) a single call's buffer to grow, and
// the next call that batch's: BenchmarkRPC's callers=256 leg allocated a
// batch-sized buffer in about one send of two.
var bodyPools [bodyClasses]sync.Pool

const bodyClasses = 11 // minPooledBody<<10 == maxPooledBody

// bodyClass is the class whose buffers hold size bytes (for a size over
// maxPooledBody, bodyClasses: no class).
func bodyClass(size int) int {
	if size <= minPooledBody {
		return 0
	}
	return bits.Len(uint(size-1)) - bits.Len(uint(minPooledBody-1))
}

// newSharedBody returns a body owned by its caller, with an empty buffer of
// at least size bytes' capacity to append to (bytes), taken from the pools
// and given back to them when pooled says so.
func newSharedBody(size int, pooled bool) *sharedBody {
	var s *sharedBody
	if cl := bodyClass(size); pooled && cl < bodyClasses {
		s, _ = bodyPools[cl].Get().(*sharedBody)
		if s == nil {
			s = &sharedBody{buf: make([]byte, 0, minPooledBody<<cl)}
		}
	} else {
		s = new(sharedBody)
	}
	if cap(s.buf) < size {
		s.buf = make([]byte, 0, size)
	}
	s.pooled = pooled
	s.refs.Store(1)
	return s
}

// bytes is the body's content; set it with set.
func (s *sharedBody) bytes() []byte { return s.buf }

func (s *sharedBody) set(b []byte) { s.buf = b }

// reader returns a reader of the body, which holds the buffer until closed.
func (s *sharedBody) reader() io.ReadCloser {
	s.refs.Add(1)
	return &sharedReader{Reader: bytes.NewReader(s.buf), s: s}
}

// release is the owner's end of its use: no reader is made after it.
func (s *sharedBody) release() { s.unref() }

// unref drops one reference; the last one puts the body, with its buffer,
// back in the pool (when pooled), for newSharedBody to hand out again.
func (s *sharedBody) unref() {
	if s.refs.Add(-1) != 0 || !s.pooled || cap(s.buf) < minPooledBody || cap(s.buf) > maxPooledBody {
		return
	}
	// The class whose every buffer it can stand for: the one at or under
	// its capacity (a body grown by append has a capacity between two).
	cl := bodyClass(cap(s.buf))
	if minPooledBody<<cl > cap(s.buf) {
		cl--
	}
	s.buf = s.buf[:0]
	bodyPools[cl].Put(s)
}

type sharedReader struct {
	*bytes.Reader
	s      *sharedBody
	closed atomic.Bool
}

func (r *sharedReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.s.unref()
	}
	return nil
}
