package upstash

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// loopbackPair returns a bodyConn dialed over loopback TCP and the
// accepted end of it.
func loopbackPair(t *testing.T) (*bodyConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialBodyConn(&net.Dialer{})(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	peer, ok := <-accepted
	require.True(t, ok, "accept failed")
	t.Cleanup(func() { _ = c.Close(); _ = peer.Close() })
	return c.(*bodyConn), peer
}

// readN reads n bytes from c within a bound.
func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	got := make([]byte, n)
	_, err := io.ReadFull(c, got)
	require.NoError(t, err)
	return got
}

// An in-memory body under a limit that covers it goes out whole, in one
// Write from its own bytes; a limit shorter than the body, or a reader
// that is not in memory, is copied as io.Copy would: exactly the limit,
// exactly the reader's bytes.
func TestBodyConnReadFrom(t *testing.T) {
	c, peer := loopbackPair(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 20_000) // 320,000 bytes

	cases := []struct {
		name  string
		r     func() io.Reader
		wantN int
	}{
		{"in-memory, limit = length", func() io.Reader { return io.LimitReader(bytes.NewReader(body), int64(len(body))) }, len(body)},
		{"in-memory, partly read", func() io.Reader {
			br := bytes.NewReader(body)
			_, _ = br.Read(make([]byte, 1000))
			return io.LimitReader(br, int64(len(body)-1000))
		}, len(body) - 1000},
		{"in-memory, limit shorter", func() io.Reader { return io.LimitReader(bytes.NewReader(body), 70_000) }, 70_000},
		{"pooled body reader", func() io.Reader {
			s := newSharedBody(len(body), true)
			s.set(append(s.bytes(), body...))
			t.Cleanup(s.release)
			return io.LimitReader(s.reader(), int64(len(body)))
		}, len(body)},
		{"not in memory", func() io.Reader { return io.LimitReader(io.MultiReader(bytes.NewReader(body)), int64(len(body))) }, len(body)},
		{"not limited", func() io.Reader { return bytes.NewReader(body[:50_000]) }, 50_000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r()
			done := make(chan []byte, 1)
			go func() { done <- readN(t, peer, tc.wantN) }()
			n, err := c.ReadFrom(r)
			require.NoError(t, err)
			require.Equal(t, int64(tc.wantN), n)
			got := <-done
			want := body[:tc.wantN]
			if strings.HasPrefix(tc.name, "in-memory, partly") {
				want = body[1000:]
			}
			require.True(t, bytes.Equal(want, got), "the bytes sent differ from the body's")
			if lr, ok := r.(*io.LimitedReader); ok && tc.wantN == len(body) {
				require.Equal(t, int64(0), lr.N, "the limit is used up")
			}
		})
	}
}

// An in-memory body covered by its limit costs no allocation to send.
func TestBodyConnReadFromNoAlloc(t *testing.T) {
	c, peer := loopbackPair(t)
	body := bytes.Repeat([]byte("x"), 100_000)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	br := bytes.NewReader(body)
	lr := &io.LimitedReader{}
	allocs := testing.AllocsPerRun(20, func() {
		br.Reset(body)
		*lr = io.LimitedReader{R: br, N: int64(len(body))}
		if _, err := c.ReadFrom(lr); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

// Produce bodies larger than the client's write buffer (64 KiB) reach the
// REST server intact, through the transport's own client, whose
// connections are bodyConns.
func TestProduceLargeBodies(t *testing.T) {
	s := startServer(t, serverConfig{serve: true, broker: []memory.Option{memory.WithPartitions(1)}})
	tr := newTestTransport(t, s.URL)
	require.True(t, tr.ownClient)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tail, err := tr.Tail(ctx, "large")
	require.NoError(t, err)
	defer tail.Close()

	var msgs []transport.Message
	for i := range 40 {
		msgs = append(msgs, transport.Message{Topic: "large", Value: []byte(strings.Repeat(string(rune('a'+i%26)), 5000+i))})
	}
	out, err := tr.Produce(ctx, msgs...) // one request of about 200 KB
	require.NoError(t, err)
	require.Len(t, out, len(msgs))
	var got []transport.Message
	for len(got) < len(msgs) && ctx.Err() == nil {
		polled, err := tail.Poll(ctx)
		require.NoError(t, err)
		got = append(got, polled...)
	}
	require.Len(t, got, len(msgs))
	for i := range msgs {
		require.Equal(t, string(msgs[i].Value), string(got[i].Value), "record %d", i)
	}
}
