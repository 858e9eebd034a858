package restserver_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// carriedConsume sends a consume carrying body on e's instance g/i and
// returns the answer once its headers are in (the body unread), or fails
// the test when they do not come within d. stop ends the request.
func carriedConsume(t *testing.T, e *env, path, body string, d time.Duration) (resp *http.Response, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPass)
	req.Header.Set("Kafka-Auto-Offset-Reset", "earliest")
	type res struct {
		resp *http.Response
		err  error
	}
	got := make(chan res, 1)
	go func() {
		r, err := e.client.Do(req) // returns once the headers are in
		got <- res{r, err}
	}()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		return r.resp, func() { cancel(); _ = r.resp.Body.Close() }
	case <-time.After(d):
		cancel()
		if r := <-got; r.err == nil {
			_ = r.resp.Body.Close()
		}
		t.Fatalf("no answer to the carried produce within %v: the client would take its records for unwritten and produce them again", d)
		return nil, nil
	}
}

// BUG (fixed: see TestBreak7CarrySlowJoinWritesRepliesTwice in
// transport/upstash): a consume that carried records answered them
// (Kafka-Produced) only after its instance had joined the group. A join
// takes a rebalance on Kafka (seconds; up to the session timeout of
// members a crashed kafka-rest left behind), longer than a client waits
// for the headers, and the client then produces the records again. The
// records are now answered as soon as they are written, before the join.
// With a carried commit too, the commit is then not done (no
// Kafka-Committed): the client commits alone.
func TestBreak7CarryAnsweredBeforeSlowJoin(t *testing.T) {
	for _, withCommit := range []bool{false, true} {
		name := "produce"
		if withCommit {
			name = "produce and commit"
		}
		t.Run(name, func(t *testing.T) {
			g := &gatedJoin{entered: make(chan struct{}), release: make(chan struct{})}
			e := newEnv(t, envConfig{
				broker: []memory.Option{memory.WithAutoCreate(false), memory.WithTopic("in", 1), memory.WithTopic("out", 1)},
				wrap:   func(b restserver.Backend) restserver.Backend { g.Backend = b; return g },
			})
			e.ok("POST", "/produce/in", `{"value":"request"}`)
			released := false
			release := func() {
				if !released {
					released = true
					close(g.release)
				}
			}
			defer release()

			body := `{"topics":["in"],"timeout":5000,"produce":[{"topic":"out","value":"reply"}]`
			if withCommit {
				body += `,"commit":[{"topic":"in","partition":0,"offset":0}]`
			}
			body += `}`
			resp, stop := carriedConsume(t, e, "/consume/g/i", body, 5*time.Second)
			defer stop()
			select {
			case <-g.entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the consume did not join")
			}
			require.Equal(t, http.StatusOK, resp.StatusCode)
			meta := decode[[]metadata](t, resp.Header.Get(restserver.ProducedHeader))
			require.Len(t, meta, 1)
			assert.Empty(t, resp.Header.Values(restserver.CommittedHeader), "no commit was done")
			assert.Equal(t, int64(1), e.latest("out", 0))

			release()
			data, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, []string{"request"}, values(decode[[]consumed](t, string(data))))
		})
	}
}

// The same when another consume of the instance holds it (a client's
// earlier long poll, cut short on its side but still running here): the
// carried records are answered at once, not when that consume ends.
func TestBreak7CarryAnsweredWhileInstanceBusy(t *testing.T) {
	t.Parallel()
	e := newCarryEnv(t)
	e.consume("g", "i", `{"topics":["in"],"timeout":5000}`, earliest...) // joined, "request" taken

	// Its headers say it holds the instance, in its long poll.
	busy, stopBusy := carriedConsume(t, e, "/consume/g/i", `{"topics":["in"],"timeout":3000,"produce":[]}`, time.Second)
	defer stopBusy()
	require.Equal(t, http.StatusOK, busy.StatusCode)

	resp, stop := carriedConsume(t, e, "/consume/g/i",
		`{"topics":["in"],"timeout":3000,"produce":[{"topic":"out","value":"reply"}],"commit":[{"topic":"in","partition":0,"offset":1}]}`, time.Second)
	defer stop()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, decode[[]metadata](t, resp.Header.Get(restserver.ProducedHeader)), 1)
	assert.Equal(t, int64(1), e.latest("out", 0))
}
