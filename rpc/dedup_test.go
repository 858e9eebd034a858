package rpc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Markers carry the broker's timestamps. With the broker's clock an hour
// behind this machine's (the skew the dedup reader measured at catch-up),
// a marker written a minute ago is still in a 10-minute window; without
// the skew it would look an hour old and be dropped. (Issue 13, "also
// seen": a clock skew larger than the window's age discarded every marker.)
func TestMarkersAgedOnTheBrokersClock(t *testing.T) {
	now := time.Now()
	marker := func(id string) *transport.Message {
		m := markerFor("g.handled", "other-instance", id, nil)
		m.Time = now.Add(-time.Hour - time.Minute) // broker clock: an hour behind, a minute ago
		return &m
	}
	w := newDedupWindow(100, 10*time.Minute)
	w.learnMarker(marker("a"), now)
	assert.False(t, w.has("a"), "without the skew the marker looks an hour old")

	w = newDedupWindow(100, 10*time.Minute)
	w.skew.Store(int64(-time.Hour))
	w.learnMarker(marker("b"), now)
	assert.True(t, w.has("b"), "on the broker's clock the marker is a minute old")
}

// A reply over maxMarkerReply is left out of its marker, which then stays
// small; a smaller one travels in it and is sent again from it.
func TestMarkerCarriesOnlySmallReplies(t *testing.T) {
	small := &transport.Message{Topic: "c.replies", Key: "id", Value: []byte(`{"ok":true}`)}
	m := markerFor("g.handled", "me", "id", small)
	e, ok := entryFromMarker(&m)
	assert.True(t, ok)
	if assert.NotNil(t, e.reply.Load()) {
		assert.Equal(t, small.Value, e.reply.Load().Value)
	}
	big := &transport.Message{Topic: "c.replies", Key: "id", Value: make([]byte, maxMarkerReply+1)}
	m = markerFor("g.handled", "me", "id", big)
	assert.Empty(t, m.Value)
	assert.Less(t, messageSize(&m), 200, "a marker without its reply is small")
	e, ok = entryFromMarker(&m)
	assert.True(t, ok)
	assert.Nil(t, e.reply.Load(), "the reply is not sent again by another instance")
}
