package restserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// deadlineSpy is a Backend that is not an instantProducer (the embedded
// interface hides the marker), recording whether each Produce's context had
// a deadline.
type deadlineSpy struct {
	Backend
	deadlines chan time.Duration // time left; -1: no deadline
}

func (d deadlineSpy) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	d.deadlines <- left
	return d.Backend.Produce(ctx, msgs...)
}

// TestProduceContext: a produce on the embedded broker (whose Produce
// never waits) gets the request's context without a timer; on any other
// backend it is bounded by the maximum timeout, through POST /produce and
// through a consume carrying records.
func TestProduceContext(t *testing.T) {
	b, err := memory.New(memory.WithTopic("t", 1))
	require.NoError(t, err)
	defer b.Close()

	mem, err := New(NewMemoryBackend(b), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer mem.Close()
	r := httptest.NewRequest(http.MethodPost, "/produce", nil)
	ctx, cancel := mem.produceContext(r)
	_, has := ctx.Deadline()
	assert.False(t, has, "the embedded broker's produce needs no timer")
	assert.Equal(t, r.Context(), ctx)
	cancel()
	cancel() // idempotent, as any CancelFunc

	spy := deadlineSpy{Backend: NewMemoryBackend(b), deadlines: make(chan time.Duration, 4)}
	s, err := New(spy, WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer s.Close()
	_, isInstant := Backend(spy).(instantProducer)
	require.False(t, isInstant)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/produce", `{"topic":"t","value":"a"}`},
		{http.MethodPost, "/produce", `[{"topic":"t","value":"b"}]`},
		{http.MethodGet, "/produce/t/c", ``},
		{http.MethodPost, "/consume/g/i", `{"topics":["t"],"timeout":0,"produce":[{"topic":"t","value":"d"}]}`},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		require.Equal(t, http.StatusOK, w.Code, "%s %s: %s", c.path, c.body, w.Body)
		select {
		case left := <-spy.deadlines:
			assert.Greater(t, left, time.Duration(0), c.path)
			assert.LessOrEqual(t, left, s.cfg.maxTimeout, c.path)
		default:
			t.Fatalf("%s %s: the backend was not asked to produce", c.path, c.body)
		}
	}
	got, err := b.Fetch(context.Background(), "t", 0, 0, 10)
	require.NoError(t, err)
	require.Len(t, got, 4, "every record was written")
}
