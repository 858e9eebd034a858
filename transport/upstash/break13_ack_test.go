package upstash

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// break13Proxy is an HTTP proxy in front of u that cuts off (sends half of,
// then drops the connection) the first consume answer with records whose
// body holds the value armed, once, and tells the test that answer's last
// record's value.
type break13Proxy struct {
	mu    sync.Mutex
	armed string
	cut   chan string // the cut answer's last value
}

func newBreak13Proxy(t *testing.T, u string) (*break13Proxy, string) {
	t.Helper()
	p := &break13Proxy{cut: make(chan string, 1)}
	url, _ := cuttingProxy(t, u, func(body []byte) bool {
		p.mu.Lock()
		cut := p.armed != "" && bytes.Contains(body, []byte(`"`+p.armed+`"`))
		if cut {
			p.armed = ""
		}
		p.mu.Unlock()
		if cut {
			var recs []struct{ Value string }
			if json.Unmarshal(body, &recs) == nil && len(recs) > 0 {
				p.cut <- recs[len(recs)-1].Value
			}
		}
		return cut
	})
	return p, url
}

func (p *break13Proxy) arm(value string) {
	p.mu.Lock()
	p.armed = value
	p.mu.Unlock()
}

// Through the transport: a rebalance hands a partition to another instance
// and back (read again from the committed offsets: none), so the answer
// after it can end with the record the consumer's last answer ended with
// while holding a new record of the other partition. That answer is cut
// off on its way. The transport retries the consume, acknowledging the
// last answer it read whole; the new record must still come. With a token
// of the last record alone, the retry acknowledged the cut answer and the
// new record never came (TestBreak13AckOfEarlierAnswerDoesNotAcknowledgeARewoundAnswer
// in restserver shows the same on the wire).
func TestBreak13CutAnswerAfterRewindIsSentAgain(t *testing.T) {
	s := startServer(t, serverConfig{broker: []memory.Option{memory.WithPartitions(2)}})
	proxy, u := newBreak13Proxy(t, s.URL)
	direct := newTestTransport(t, s.URL, WithPollWindow(200*time.Millisecond))
	tr := newTestTransport(t, u, WithPollWindow(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	const attempts = 6
	collided := 0
	for a := range attempts {
		topic := fmt.Sprintf("jobs%d", a)
		group := "g-" + topic
		sub := transport.Subscription{Group: group, Instance: "i1", Topics: []string{topic}, Start: transport.StartEarliest}
		c, err := tr.Subscribe(ctx, sub)
		require.NoError(t, err)
		// pollFor polls c until it has seen want, for at most 5s.
		pollFor := func(want string) bool {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			for {
				msgs, err := c.Poll(pctx)
				if pctx.Err() != nil {
					return false
				}
				if err != nil {
					continue // a cut answer the transport did not retry: the next Poll
				}
				for _, m := range msgs {
					if string(m.Value) == want {
						return true
					}
				}
			}
		}
		produce := func(p int32, v string) {
			_, err := direct.Produce(ctx, transport.Message{Topic: topic, Partition: p, Value: []byte(v)})
			require.NoError(t, err)
		}
		rp := int32(a % 2)
		for w := range a / 2 {
			produce(rp, fmt.Sprintf("warm-%d-%d", a, w))
			require.True(t, pollFor(fmt.Sprintf("warm-%d-%d", a, w)))
		}
		produce(rp, fmt.Sprintf("R-%d", a))
		require.True(t, pollFor(fmt.Sprintf("R-%d", a)))
		// Another instance joins and leaves without committing.
		c2, err := direct.Subscribe(ctx, transport.Subscription{Group: group, Instance: "i2", Topics: []string{topic}, Start: transport.StartEarliest})
		require.NoError(t, err)
		require.NoError(t, c2.Close())

		n := fmt.Sprintf("N-%d", a)
		proxy.arm(n)
		produce(1-rp, n)
		got := pollFor(n)
		var last string
		select {
		case last = <-proxy.cut:
		default:
			t.Fatalf("attempt %d: the proxy cut no answer", a)
		}
		if last == fmt.Sprintf("R-%d", a) {
			collided++
		}
		require.True(t, got, "attempt %d: %s never came after its answer (ending with %s) was cut", a, n, last)
		require.NoError(t, c.Close())
	}
	t.Logf("%d of %d cut answers ended with the record the answer read before them ended with", collided, attempts)
	require.Positive(t, collided, "no attempt reached the case")
}
