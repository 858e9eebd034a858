package upstash

import (
	"context"
	"errors"
	"io"
	"net"
)

// bodyConn is a connection of the transport's own HTTP client. net/http
// writes a request body that does not fit its write buffer (WriteBufferSize)
// through the connection's ReadFrom, as an io.LimitedReader of the body's
// Content-Length: a *net.TCPConn copies it through a buffer it allocates
// for each request (up to 32 KiB) in writes of that size. The transport's
// bodies are in memory, read through a *bytes.Reader (sharedReader embeds
// one): bodyConn writes what is left of such a body in one Write, from the
// body's own bytes.
type bodyConn struct {
	net.Conn
}

// dialBodyConn returns a DialContext of dialer whose connections are
// bodyConns.
func dialBodyConn(dialer *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &bodyConn{Conn: c}, nil
	}
}

// inMemoryBody is a reader of bytes in memory that can write them all at
// once: a *bytes.Reader.
type inMemoryBody interface {
	io.WriterTo
	Len() int // bytes not yet read
}

// ReadFrom implements io.ReaderFrom. A limited reader of an in-memory
// body whose limit covers what is left of it is written with the body's
// WriteTo; any other reader is copied as the connection would copy it.
func (c *bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(inMemoryBody); ok && int64(b.Len()) <= lr.N {
			n, err := b.WriteTo(c.Conn)
			lr.N -= n
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// CloseWrite shuts down the writing side of the connection when the
// underlying one can (as net/http's protocol switches ask).
func (c *bodyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// writerOnly hides a writer's other methods from io.Copy.
type writerOnly struct{ io.Writer }
