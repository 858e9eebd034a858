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

// Body buffers are pooled by size class: class c holds buffers of at least
// 1<<c bytes' capacity, for c from minBodyClass to maxBodyClass. A body
// is taken from the class that covers its size, so that a pooled buffer
// always fits (one pool of mixed sizes handed a batch body of 60 KB the
// 500-byte buffer of a single call, which it then dropped for a new one).
const (
	minBodyClass = 10 // 1 KiB
	maxBodyClass = 20 // 1 MiB, the largest body buffer kept for reuse
)

// bodyPools holds released sharedBodies, each with its buffer, by size
// class (see minBodyClass): a body costs no allocation when its class's
// pool has one.
var bodyPools [maxBodyClass - minBodyClass + 1]sync.Pool

// bodyClassFor is the class of the buffers that hold size bytes: the
// smallest c with 1<<c >= size, at least minBodyClass; past maxBodyClass
// for a size no pooled buffer holds.
func bodyClassFor(size int) int {
	if size <= 1<<minBodyClass {
		return minBodyClass
	}
	return bits.Len(uint(size - 1))
}

// bodyClassOf is the class a buffer of capacity n goes back to: the
// largest c with 1<<c <= n; below minBodyClass for a buffer too small to
// keep.
func bodyClassOf(n int) int { return bits.Len(uint(n)) - 1 }

// newSharedBody returns a body owned by its caller, with an empty buffer of
// at least size bytes' capacity to append to (bytes), taken from the pool
// and given back to it when pooled says so. A new pooled buffer is made
// with its class's capacity, for any later body of that class.
func newSharedBody(size int, pooled bool) *sharedBody {
	c := bodyClassFor(size)
	if !pooled || c > maxBodyClass {
		s := &sharedBody{buf: make([]byte, 0, size), pooled: pooled}
		s.refs.Store(1)
		return s
	}
	s, _ := bodyPools[c-minBodyClass].Get().(*sharedBody)
	if s == nil {
		s = &sharedBody{buf: make([]byte, 0, 1<<c)}
	}
	s.pooled = true
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
	if s.refs.Add(-1) != 0 || !s.pooled {
		return
	}
	if c := bodyClassOf(cap(s.buf)); c >= minBodyClass && c <= maxBodyClass {
		s.buf = s.buf[:0]
		bodyPools[c-minBodyClass].Put(s)
	}
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
