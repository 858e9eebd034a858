package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// BUG (fixed): Close of a static member removed its instance with a LeaveGroup that
// named only the instance id. Kafka (and kfake) then remove whichever member
// holds that instance id now. A process replaced by a newer one with the
// same instance id that has not yet learnt of it (it learns at its next
// heartbeat) and closes in that window therefore kicked the newer, live
// member out of the group: the newer member lost its partitions (OnRevoked,
// in-flight requests re-run elsewhere) and had to rejoin. The LeaveGroup
// must name the closing member's own member id too, so the broker fences
// it (FENCED_INSTANCE_ID) when the instance belongs to someone else.
func TestBreak5StaticCloseDoesNotEvictReplacement(t *testing.T) {
	brokers := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := "b5static-" + uuid.NewString()[:8]
	group := topic + "-g"
	// The old process heartbeats rarely, so it has not noticed the
	// replacement when it closes.
	tr1 := newTransport(t, brokers, kafka.HeartbeatInterval(5*time.Second))
	tr2 := newTransport(t, brokers)
	_, err := tr1.Produce(ctx, transport.Message{Topic: topic, Value: []byte("x")})
	require.NoError(t, err)

	sub := func(onRevoked func([]transport.TopicPartition)) transport.Subscription {
		return transport.Subscription{Group: group, Instance: "inst", Topics: []string{topic},
			SessionTimeout: 30 * time.Second, OnRevoked: onRevoked}
	}
	c1, err := tr1.Subscribe(ctx, sub(nil))
	require.NoError(t, err)
	revoked2 := make(chan []transport.TopicPartition, 8)
	c2, err := tr2.Subscribe(ctx, sub(func(tps []transport.TopicPartition) { revoked2 <- tps }))
	require.NoError(t, err)
	defer c2.Close()

	adm := kadm.NewClient(mustClient(t, brokers))
	memberOf := func() string {
		gs, err := adm.DescribeGroups(ctx, group)
		require.NoError(t, err)
		ms := gs[group].Members
		if len(ms) != 1 {
			return ""
		}
		return ms[0].MemberID
	}
	// Wait until c2 owns partitions (it replaced c1 in the group).
	require.Eventually(t, func() bool {
		_, err := c2.Poll(ctx)
		return err == nil && memberOf() != ""
	}, 10*time.Second, 50*time.Millisecond)
	before := memberOf()

	require.NoError(t, c1.Close())

	// c2 must stay the same member, with its partitions.
	deadline := time.After(2 * time.Second)
	for {
		select {
		case tps := <-revoked2:
			t.Fatalf("closing the replaced instance revoked the live one's partitions %v", tps)
		case <-deadline:
			require.Equal(t, before, memberOf(), "closing the replaced instance removed the live member")
			return
		default:
		}
		_, err := c2.Poll(ctx)
		require.NoError(t, err)
	}
}
