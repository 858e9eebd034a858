package upstash

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
	"github.com/kafkarpc/kafkarpc/transport"
)

// TestB15OutageOfOneRouteWarnsOnce: a server that fails one route (503 to
// every produce) while it answers another (GET /topics) is one outage: one
// warning, and no "answers again" until the failing route answers. The
// outage was the transport's, ended by any answer, so each produce that
// followed an answer of the other route warned again, and each such
// answer said the server answered again.
func TestB15OutageOfOneRouteWarnsOnce(t *testing.T) {
	var produceOK atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/topics":
			_, _ = w.Write([]byte(`{"t":1}`))
		case r.URL.Path == "/produce" && produceOK.Load():
			_, _ = w.Write([]byte(okProduce))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"busy","status":503}`))
		}
	}))
	defer srv.Close()
	var buf testutil.SyncBuffer
	tr := newTestTransport(t, srv.URL, WithLogger(logged22(&buf)),
		WithBackoff(Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}))
	produce := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 80*time.Millisecond)
		defer cancel()
		_, err := tr.Produce(ctx, transport.Message{Topic: "t", Value: []byte(`"v"`)})
		return err
	}

	for range 3 {
		require.ErrorIs(t, produce(), transport.ErrUnavailable)
		missing, err := tr.MissingTopics(t.Context(), "t")
		require.NoError(t, err)
		require.Empty(t, missing)
	}
	log := buf.String()
	require.Len(t, warnings22(log), 1, "one warning for the outage of /produce: %s", log)
	assert.Contains(t, warnings22(log)[0], "POST /produce")
	assert.Zero(t, strings.Count(log, "answers again"), "GET /topics answering does not end it: %s", log)

	produceOK.Store(true)
	require.NoError(t, produce())
	log = buf.String()
	assert.Equal(t, 1, strings.Count(log, "answers again"), log)
	assert.Len(t, warnings22(log), 1, log)
}

// TestB15OutageEndsWhenNothingFailsForMaxElapsed: an outage whose route is
// not asked again ends at the next answer of another route once no attempt
// failed for Backoff.MaxElapsed, so a later outage is warned about again.
func TestB15OutageEndsWhenNothingFailsForMaxElapsed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/topics" {
			_, _ = w.Write([]byte(`{"t":1}`))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"busy","status":503}`))
	}))
	defer srv.Close()
	var buf testutil.SyncBuffer
	tr := newTestTransport(t, srv.URL, WithLogger(logged22(&buf)),
		WithBackoff(Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond, MaxElapsed: 50 * time.Millisecond}))
	_, err := tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte(`"v"`)})
	require.ErrorIs(t, err, transport.ErrUnavailable)
	require.Len(t, warnings22(buf.String()), 1, buf.String())

	require.Eventually(t, func() bool {
		_, err := tr.MissingTopics(t.Context(), "t")
		require.NoError(t, err)
		return strings.Contains(buf.String(), "answers again")
	}, 5*time.Second, 5*time.Millisecond)
	_, err = tr.Produce(t.Context(), transport.Message{Topic: "t", Value: []byte(`"v"`)})
	require.ErrorIs(t, err, transport.ErrUnavailable)
	assert.Len(t, warnings22(buf.String()), 2, buf.String())
}
