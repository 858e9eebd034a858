package restserver

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// BUG (fixed): the window of TestBreak5OldIncarnationConsumeRacingReplacementLosesRecords,
// step by step. A request of incarnation "one" passes claimIncarnation;
// before it takes the instance, incarnation "two" claims the name and
// replaces the instance. The "one" request then went on with the registry
// as it found it: a consume created a fresh instance (which "two" then
// shared: records given to "one" are never given to "two", and "two"'s
// commit of its positions commits past them), a commit used "two"'s
// instance (an empty-body commit committed "two"'s positions). Both fail
// without the fix. handleDeleteConsumer had the same window (claim, unlock,
// then delete whatever is registered); it now checks again under the lock,
// which the handler-level assertion at the end only exercises in part (the
// handler makes its own claim first).
func TestBreak5ClaimThenAcquireIsAtomic(t *testing.T) {
	b, err := memory.New()
	require.NoError(t, err)
	defer b.Close()
	s, err := New(NewMemoryBackend(b), WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer s.Close()

	req := func(path, token string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, path, nil)
		r.Header.Set(IncarnationHeader, token)
		return r
	}
	key := instanceKey{group: "g", name: "w"}

	// "one" owns the instance.
	require.NoError(t, s.claimIncarnation(key, req("/consume/g/w", "one"), true))
	in, _, err := s.acquireInstance(key, req("/consume/g/w", "one"), true)
	require.NoError(t, err)
	s.releaseInstance(in)

	// A consume, a commit and a delete of "one" pass the check...
	for _, p := range []string{"/consume/g/w", "/commit/g/w", "/delete-consumer/g/w"} {
		require.NoError(t, s.claimIncarnation(key, req(p, "one"), p == "/consume/g/w"))
	}
	// ... then "two" replaces the instance and makes its own.
	require.NoError(t, s.claimIncarnation(key, req("/consume/g/w", "two"), true))
	two, created, err := s.acquireInstance(key, req("/consume/g/w", "two"), true)
	require.NoError(t, err)
	require.True(t, created)
	defer s.releaseInstance(two)

	// Now the three "one" requests take the instance: each must be fenced,
	// never given "two"'s instance or a new one.
	got, _, err := s.acquireInstance(key, req("/consume/g/w", "one"), true)
	if err == nil {
		s.releaseInstance(got)
	}
	assert.True(t, errors.Is(err, transport.ErrFenced), "old incarnation's consume got an instance (same as two's: %v): %v", got == two, err)
	got, _, err = s.acquireInstance(key, req("/commit/g/w", "one"), false)
	if err == nil {
		s.releaseInstance(got)
	}
	assert.True(t, errors.Is(err, transport.ErrFenced), "old incarnation's commit got the new incarnation's instance (%v): %v", got == two, err)

	w := httptest.NewRecorder()
	err = s.handleDeleteConsumer(w, req("/delete-consumer/g/w", "one"), []string{"delete-consumer", "g", "w"})
	assert.True(t, errors.Is(err, transport.ErrFenced), "old incarnation's delete: %v", err)
	s.mu.Lock()
	still := s.instances[key] == two
	s.mu.Unlock()
	assert.True(t, still, "the old incarnation's delete removed the new incarnation's instance")
}
