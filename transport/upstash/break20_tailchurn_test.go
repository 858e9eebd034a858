package upstash

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak20TailOfSeveralTopicsKeepsItsConnections: a Tail of several
// topics fetches each topic with its own long poll, and a Poll returned
// as soon as one had records by cancelling the others; a request
// cancelled while its answer is awaited closes its connection. So every
// Poll with records dialled a new connection (and left the old one in
// TIME_WAIT): under a sustained load, a new TCP connection per poll, until
// the client runs out of ephemeral ports. The other topics' fetches now
// stay in flight, their answers kept for the next Poll.
func TestBreak20TailOfSeveralTopicsKeepsItsConnections(t *testing.T) {
	s := startServer(t, serverConfig{})
	var dials atomic.Int64
	d := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}}
	defer hc.CloseIdleConnections()
	tr := newTestTransport(t, s.URL, WithHTTPClient(hc))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := tr.Tail(ctx, "busy", "quiet")
	require.NoError(t, err)
	defer c.Close()

	const polls = 40
	before := dials.Load()
	var got []string
	for i := range polls {
		_, err := tr.Produce(ctx, transport.Message{Topic: "busy", Value: fmt.Appendf(nil, "b%d", i)})
		require.NoError(t, err)
		for len(got) <= i {
			msgs, err := c.Poll(ctx)
			require.NoError(t, err)
			got = append(got, values(msgs)...)
		}
	}
	// A record on the quiet topic is read by the fetch left in flight.
	_, err = tr.Produce(ctx, transport.Message{Topic: "quiet", Value: []byte("q")})
	require.NoError(t, err)
	for len(got) < polls+1 {
		msgs, err := c.Poll(ctx)
		require.NoError(t, err)
		got = append(got, values(msgs)...)
	}
	assert.Len(t, got, polls+1, "every record once")
	assert.Contains(t, got, "q")
	dialled := dials.Load() - before
	t.Logf("%d connections dialled over %d polls with records", dialled, polls)
	assert.Less(t, dialled, int64(polls/4), "a Tail of two topics dials a connection per Poll with records")
}
