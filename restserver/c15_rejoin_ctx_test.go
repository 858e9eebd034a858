package restserver_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/resttest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// leftDuringRefusal is a backend whose join of a set naming topic "b" is
// refused only once its consume's client has gone (as a slow join on
// Kafka, a rebalance waiting for the other members, outlasts a client's
// timeout).
type leftDuringRefusal struct {
	restserver.Backend
	cs      restserver.CommittedSubscriber
	once    sync.Once
	entered chan struct{}
	left    atomic.Bool // the join saw its client leave
}

func (b *leftDuringRefusal) SubscribeCommitted(ctx context.Context, sub transport.Subscription) (transport.Consumer, []transport.TopicPartition, error) {
	if slices.Contains(sub.Topics, "b") {
		b.once.Do(func() { close(b.entered) })
		select {
		case <-ctx.Done(): // the client left
			b.left.Store(true)
		case <-time.After(5 * time.Second):
		}
		ctx = context.WithoutCancel(ctx)
	}
	return b.cs.SubscribeCommitted(ctx, sub)
}

// TestC15RefusedResubscribeRejoinsAfterTheClientLeft: the rejoin after a
// refused re-subscribe restores what the instance read; it does not
// depend on the client that asked for the re-subscribe still waiting. It
// ran under that consume's context: a client gone during the refused join
// (its own timeout) made the rejoin fail at once, and the instance was
// deleted.
func TestC15RefusedResubscribeRejoinsAfterTheClientLeft(t *testing.T) {
	t.Parallel()
	wb := &leftDuringRefusal{entered: make(chan struct{})}
	opts := []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("a", 1), memory.WithTopic("b", 1)}
	var kc *kafkatest.Cluster
	s := resttest.Start(t, resttest.Config{
		Server: []restserver.Option{restserver.WithCredentials(testUser, testPass)},
		NewBackend: func(tb testing.TB) restserver.Backend {
			kc = kafkaBackendFor(tb, opts)
			return kc.Backend
		},
		Backend: func(b restserver.Backend) restserver.Backend {
			wb.Backend, wb.cs = b, b.(restserver.CommittedSubscriber)
			return wb
		},
	})
	e := &env{t: t, kafka: kc, srv: s.REST, url: s.URL, client: s.HTTP.Client(), backend: kc.Backend}
	e.commitOnly("g", "a", 0)
	e.ok("POST", "/produce/a", `{"value":"a0"}`)
	got := e.consumeAll("g", "strict", `{"topic":"a","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "none")
	require.Equal(t, []string{"a0"}, values(got))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/consume/g/strict", strings.NewReader(`{"topics":["a","b"],"timeout":0}`))
		if !assert.NoError(t, err) {
			return
		}
		req.SetBasicAuth(testUser, testPass)
		if resp, err := e.client.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	select {
	case <-wb.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the re-subscribe's join did not start")
	}
	cancel()
	<-done

	e.ok("POST", "/produce/a", `{"value":"a1"}`)
	got = e.consumeAll("g", "strict", `{"topic":"a","timeout":1000}`, 1)
	assert.Equal(t, []string{"a1"}, values(got), "it reads a on from where it was")
	assert.Contains(t, e.ok("GET", "/consumers", ""), `"strict"`)
	assert.True(t, wb.left.Load(), "the refused join ended after its client left")
}
