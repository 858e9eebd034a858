package kafkabackend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
)

// mapErr turns a Kafka error into one that wraps the sentinel the REST
// server answers with the status of UPSTASH_REST.md §11: unknown topic 404,
// too large 413, a rebalance in progress or a coordinator moving 503
// (restserver.ErrUnavailable, retry), a member no longer in its group 400
// (transport.ErrNotAssigned). what says what was being done. Context errors
// and nil pass through.
func mapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("kafkabackend: %s: %w", what, transport.ErrClosed)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("kafkabackend: %s: %w (%v)", what, transport.ErrUnknownTopic, err)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Errorf("kafkabackend: %s: %w (%v)", what, transport.ErrMessageTooLarge, err)
	case errors.Is(err, kerr.RebalanceInProgress):
		return fmt.Errorf("kafkabackend: %s: the consumer group is rebalancing, retry shortly: %w", what, restserver.ErrUnavailable)
	case errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable),
		errors.Is(err, kerr.CoordinatorLoadInProgress):
		return fmt.Errorf("kafkabackend: %s: the group coordinator is moving or loading (%v), retry shortly: %w", what, err, restserver.ErrUnavailable)
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.LeaderNotAvailable),
		errors.Is(err, kerr.FencedLeaderEpoch), errors.Is(err, kerr.UnknownLeaderEpoch):
		return fmt.Errorf("kafkabackend: %s: the partition leader is moving (%v), retry shortly: %w", what, err, restserver.ErrUnavailable)
	case errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.UnknownMemberID),
		errors.Is(err, kerr.StaleMemberEpoch):
		return fmt.Errorf("kafkabackend: %s: the member was dropped from its group (%v): %w", what, err, transport.ErrNotAssigned)
	case errors.Is(err, kerr.FencedInstanceID):
		return fmt.Errorf("kafkabackend: %s: %w (%v)", what, transport.ErrFenced, err)
	case errors.Is(err, kerr.InvalidSessionTimeout):
		return fmt.Errorf("kafkabackend: %s: Kafka-Session-Timeout-Ms is outside the brokers' group.min/max.session.timeout.ms: %w (%v)", what, transport.ErrInvalid, err)
	case errors.Is(err, kerr.InvalidPartitions), errors.Is(err, kerr.InvalidTopicException), errors.Is(err, kerr.InvalidGroupID):
		return fmt.Errorf("kafkabackend: %s: %w (%v)", what, transport.ErrInvalid, err)
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return fmt.Errorf("kafkabackend: %s: the brokers refused the SASL credentials: %w", what, transport.ErrUnauthenticated)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.GroupAuthorizationFailed),
		errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("kafkabackend: %s: %w (%v)", what, transport.ErrPermissionDenied, err)
	}
	if unreachable(err) {
		return fmt.Errorf("kafkabackend: %s: the brokers cannot be reached (%v), retry shortly: %w", what, err, restserver.ErrUnavailable)
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && ke.Retriable {
		return fmt.Errorf("kafkabackend: %s: a transient Kafka error (%v), retry shortly: %w", what, err, restserver.ErrUnavailable)
	}
	return fmt.Errorf("kafkabackend: %s: %w", what, err)
}

// unreachable tells whether err is a failure to reach the brokers (a
// refused or broken connection, a dial or I/O timeout): with the brokers
// down, /topics, a consume's join and the like answered 500 instead of a
// retryable 503.
func unreachable(err error) bool {
	var ne net.Error
	var fre *kgo.ErrFirstReadEOF
	return errors.As(err, &ne) || errors.As(err, &fre) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
