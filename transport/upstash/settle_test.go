package upstash

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// lateProxy forwards requests to a REST server, but holds every consume
// after the first until a later delete-consumer has been answered, and
// then delivers it even though the client has given up on it: the consume
// that was already on the wire when the client closed the consumer.
type lateProxy struct {
	*httptest.Server
	target   string
	client   *http.Client
	consumes atomic.Int64
	release  chan struct{}
	once     sync.Once
	held     sync.WaitGroup
}

func newLateProxy(t testing.TB, target string) *lateProxy {
	p := &lateProxy{target: target, client: &http.Client{Transport: &http.Transport{}}, release: make(chan struct{})}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.once.Do(func() { close(p.release) })
		p.Close()
		p.held.Wait()
		p.client.CloseIdleConnections()
	})
	return p
}

func (p *lateProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ctx := r.Context()
	if strings.HasPrefix(r.URL.Path, "/consume/") && p.consumes.Add(1) > 1 {
		p.held.Add(1)
		defer p.held.Done()
		<-p.release
		ctx = context.WithoutCancel(ctx) // the client has gone; deliver anyway
	}
	req, _ := http.NewRequestWithContext(ctx, r.Method, p.target+r.URL.EscapedPath(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(r.URL.Path, "/delete-consumer/") && p.consumes.Load() > 1 {
		p.once.Do(func() { close(p.release) })
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(data)
}

// A consume that reaches the server after Close deleted the instance
// re-creates it; Close deletes it again, so no stray member keeps the
// group's partitions.
func TestCloseLeavesNoStrayInstance(t *testing.T) {
	s := startServer(t, serverConfig{})
	p := newLateProxy(t, s.URL)
	tr := newTestTransport(t, p.URL, WithPollWindow(2*time.Second))
	c, err := tr.Subscribe(t.Context(), transport.Subscription{Group: "g", Instance: "i", Topics: []string{"t"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"g/i"}, s.instances(t))

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Poll(ctx) // its consume is held by the proxy
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, c.Close())
	assert.Empty(t, s.instances(t), "no instance is left behind")
	assert.Equal(t, int64(2), p.consumes.Load())
}
