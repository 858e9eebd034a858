package rpc

import (
	"context"
	"errors"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// topicCheckTimeout bounds Serve's check of its dead-letter topics.
const topicCheckTimeout = 10 * time.Second

// checkDeadLetterTopics runs in the background of a Serve that joined:
// with a transport that can tell (transport.TopicChecker), it logs one
// warning per served topic whose dead-letter topic is missing, once per
// Server: where topics are not created on first use, a record that cannot
// be served would be lost, and otherwise that would show only then. It is
// not a failure: Serve goes on. It returns a func that stops the check and
// waits for it.
func (s *Server) checkDeadLetterTopics(ctx context.Context, topics []string) (stop func()) {
	tc, ok := s.t.(transport.TopicChecker)
	if !ok {
		return func() {}
	}
	var dlqs []string
	s.mu.Lock()
	for _, tp := range topics {
		if _, done := s.dlqChecked[tp]; !done {
			dlqs = append(dlqs, tp+DeadLetterSuffix)
		}
	}
	s.mu.Unlock()
	if len(dlqs) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithTimeout(ctx, topicCheckTimeout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		missing, err := tc.MissingTopics(ctx, dlqs...)
		if err != nil {
			if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
				s.log.Debug("rpc: Serve: could not check the dead-letter topics", "topics", dlqs, "err", err)
			}
			return
		}
		s.mu.Lock()
		for _, dlq := range dlqs {
			s.dlqChecked[dlq[:len(dlq)-len(DeadLetterSuffix)]] = struct{}{}
		}
		s.mu.Unlock()
		for _, dlq := range missing {
			s.log.Warn("rpc: Serve: dead-letter topic "+dlq+" does not exist: a request of "+
				dlq[:len(dlq)-len(DeadLetterSuffix)]+" that cannot be served (a poison record, a handler failing every retry) "+
				"will be lost instead of kept there for kafkarpc dlq; create the topic",
				"topic", dlq[:len(dlq)-len(DeadLetterSuffix)], "dlq", dlq)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
