package upstash

import (
	"bytes"
	"io"
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

// bodyPool holds released sharedBodies, each with its buffer: a body
// costs no allocation when one of the pool's buffers is large enough.
var bodyPool = sync.Pool{New: func() any { return &sharedBody{buf: make([]byte, 0, 1024)} }}

// newSharedBody returns a body owned by its caller, with an empty buffer of
// at least size bytes' capacity to append to (bytes), taken from the pool
// and given back to it when pooled says so.
func newSharedBody(size int, pooled bool) *sharedBody {
	var s *sharedBody
	if pooled {
		s = bodyPool.Get().(*sharedBody)
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
	if s.refs.Add(-1) == 0 && s.pooled && cap(s.buf) <= maxPooledBody {
		s.buf = s.buf[:0]
		bodyPool.Put(s)
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
