package rpc

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

func hdrs(kv ...string) []transport.Header {
	var out []transport.Header
	for i := 0; i < len(kv); i += 2 {
		out = append(out, transport.Header{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestDecodeEnvelope(t *testing.T) {
	m := &transport.Message{Headers: hdrs(
		"rpc-v", "1", "rpc-id", "abc", "rpc-kind", "request", "rpc-method", "monthly",
		"rpc-from", "web", "rpc-reply-to", "web.replies", "rpc-reply-partition", "2",
		"rpc-timeout-ms", "1500", "content-type", "application/json", "traceparent", "00-x-y-01", "x-other", "kept")}
	env, err := decodeEnvelope(m)
	require.NoError(t, err)
	assert.False(t, env.legacy)
	assert.Equal(t, "abc", env.id)
	assert.Equal(t, KindRequest, env.kind)
	assert.Equal(t, "monthly", env.method)
	assert.Equal(t, "web", env.from)
	assert.Equal(t, "web.replies", env.replyTo)
	assert.Equal(t, int32(2), env.replyPartition)
	assert.Equal(t, 1500*time.Millisecond, env.timeout)
	assert.Equal(t, "00-x-y-01", env.traceparent)

	legacy, err := decodeEnvelope(&transport.Message{Key: "App\\X", Headers: hdrs("content-type", "application/json")})
	require.NoError(t, err)
	assert.True(t, legacy.legacy)
	assert.Equal(t, int32(-1), legacy.replyPartition)
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		h    []transport.Header
		want string
	}{
		"version":       {hdrs("rpc-v", "2", "rpc-id", "a", "rpc-kind", "request"), `rpc-v is "2"`},
		"no version":    {hdrs("rpc-id", "a", "rpc-kind", "request"), `rpc-v is ""`},
		"no id":         {hdrs("rpc-v", "1", "rpc-kind", "request"), "no rpc-id"},
		"kind":          {hdrs("rpc-v", "1", "rpc-id", "a", "rpc-kind", "shout"), `unknown rpc-kind "shout"`},
		"timeout":       {hdrs("rpc-v", "1", "rpc-id", "a", "rpc-kind", "request", "rpc-timeout-ms", "-5"), "rpc-timeout-ms"},
		"timeout text":  {hdrs("rpc-v", "1", "rpc-id", "a", "rpc-kind", "request", "rpc-timeout-ms", "soon"), "rpc-timeout-ms"},
		"deadline":      {hdrs("rpc-v", "1", "rpc-id", "a", "rpc-kind", "request", "rpc-deadline", "tomorrow"), "rpc-deadline"},
		"partition":     {hdrs("rpc-v", "1", "rpc-id", "a", "rpc-kind", "request", "rpc-reply-partition", "x"), "rpc-reply-partition"},
		"reply no corr": {hdrs("rpc-v", "1", "rpc-id", "a", "rpc-kind", "reply"), "without rpc-correlation-id"},
	} {
		_, err := decodeEnvelope(&transport.Message{Headers: tc.h})
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrBadEnvelope, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

func TestDeadlineFromRecordTime(t *testing.T) {
	now := time.Now()
	env := envelope{timeout: 2 * time.Second}
	m := &transport.Message{Time: now.Add(-500 * time.Millisecond)}
	assert.Equal(t, m.Time.Add(2*time.Second), env.deadlineFor(m, now, 0), "queueing time counts")
	future := &transport.Message{Time: now.Add(time.Hour)}
	assert.Equal(t, now.Add(2*time.Second), env.deadlineFor(future, now, 0), "a clock ahead of ours is not trusted")
	abs := envelope{deadline: now.Add(time.Minute)}
	assert.Equal(t, now.Add(time.Minute), abs.deadlineFor(m, now, 0))
	assert.True(t, (&envelope{}).deadlineFor(m, now, 0).IsZero())
	// A broker clock a minute behind ours: its timestamp is moved to our
	// clock, so the request keeps its budget.
	behind := &transport.Message{Time: now.Add(-time.Minute - 500*time.Millisecond)}
	assert.Equal(t, now.Add(-500*time.Millisecond+2*time.Second), env.deadlineFor(behind, now, -time.Minute))
}

func TestRecentIDs(t *testing.T) {
	r := newRecentIDs(2)
	r.add("a")
	r.add("b")
	assert.True(t, r.has("a"))
	r.add("c")
	assert.False(t, r.has("a"), "oldest forgotten")
	assert.True(t, r.has("b"))
	assert.True(t, r.has("c"))
}

func TestNewIDIsUUIDv7(t *testing.T) {
	seen := map[string]bool{}
	before := time.Now().UnixMilli()
	for range 1000 {
		id := newID()
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		assert.Equal(t, uuid.Version(7), u.Version())
		assert.Equal(t, uuid.RFC4122, u.Variant())
		sec, nsec := u.Time().UnixTime()
		ms := sec*1000 + nsec/1e6
		assert.GreaterOrEqual(t, ms, before)
		assert.LessOrEqual(t, ms, time.Now().UnixMilli())
		assert.False(t, seen[id], "duplicate id")
		seen[id] = true
	}
}

// BenchmarkNewID compares the hand-made UUID v7 generator with
// uuid.NewV7's, as newID's doc comment reports.
func BenchmarkNewID(b *testing.B) {
	b.Run("newID", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = newID()
		}
	})
	b.Run("uuid.NewV7", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u, _ := uuid.NewV7()
			_ = u.String()
		}
	})
	b.Run("parallel/newID", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = newID()
			}
		})
	})
	b.Run("parallel/uuid.NewV7", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				u, _ := uuid.NewV7()
				_ = u.String()
			}
		})
	})
}

// TestNewIDArenas: ids written into shared arenas are uuid's text form,
// all different across arenas and goroutines, and stay as they were handed
// out.
func TestNewIDArenas(t *testing.T) {
	before := time.Now().UnixMilli()
	id := newID()
	first := strings.Clone(id) // its own bytes, for the check at the end
	after := time.Now().UnixMilli()
	u, err := uuid.Parse(id)
	require.NoError(t, err)
	require.Equal(t, uuid.Version(7), u.Version())
	require.Equal(t, uuid.RFC4122, u.Variant())
	require.Equal(t, u.String(), id, "the text form is uuid's")
	sec, nsec := u.Time().UnixTime()
	ms := sec*1000 + nsec/1e6
	require.True(t, ms >= before && ms <= after, "id time %d not within [%d, %d]", ms, before, after)

	const perG, gs = 500, 4
	got := make([][]string, gs)
	var wg sync.WaitGroup
	for g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perG {
				got[g] = append(got[g], newID())
			}
		}()
	}
	wg.Wait()
	seen := make(map[string]bool)
	for _, ids := range got {
		for _, id := range ids {
			require.Len(t, id, 36)
			require.False(t, seen[id], "id %s handed out twice", id)
			seen[id] = true
			_, err := uuid.Parse(id)
			require.NoError(t, err)
		}
	}
	require.Equal(t, first, id, "an id handed out earlier is unchanged by the ids after it")
}
