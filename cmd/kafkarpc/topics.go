package main

import (
	"context"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/upstash"
)

// topicExists reports whether topic exists on the server, without creating
// it: reading a topic (a consume, a tail) makes a server that auto-creates
// topics create it, and so does transport.TopicChecker on the REST
// transport (it asks the server to create what is missing, as a Produce
// would). Over REST the transport's TopicExists looks, with its own
// credentials; on Kafka the transport's MissingTopics, which the command
// opens without auto-creation, so its metadata request creates nothing. A
// transport that can tell neither way is taken to have the topic.
func topicExists(ctx context.Context, t transport.Transport, topic string) (bool, error) {
	switch tt := t.(type) {
	case *upstash.Transport:
		return tt.TopicExists(ctx, topic)
	case transport.TopicChecker:
		missing, err := tt.MissingTopics(ctx, topic)
		return len(missing) == 0, err
	}
	return true, nil
}
