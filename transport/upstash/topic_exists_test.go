package upstash

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/resttest"
)

// TopicExists tells a topic that exists from one that does not, on a
// server that creates topics on first use, and creates nothing: a topic
// it was asked about is still missing after it (MissingTopics, by
// contrast, creates what is missing).
func TestTopicExistsCreatesNothing(t *testing.T) {
	srv := resttest.Start(t, resttest.Config{}) // the embedded broker creates topics on first use
	require.NoError(t, srv.Broker.CreateTopic("orders", 1))
	tr, err := New(WithURL(srv.URL))
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	ok, err := tr.TopicExists(ctx, "orders")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = tr.TopicExists(ctx, "orders.dlq")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.NotContains(t, srv.Broker.Topics(), "orders.dlq", "asking created it")

	require.NoError(t, tr.Close())
	_, err = tr.TopicExists(ctx, "orders")
	require.Error(t, err, "closed")
}
