package restserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak22CloseOfManyKafkaInstancesCommitsAndLeaves: on the Kafka
// backend (kfake), Close of instances of several groups, each having read
// its partition, commits every position and leaves every group empty.
func TestBreak22CloseOfManyKafkaInstancesCommitsAndLeaves(t *testing.T) {
	t.Parallel()
	const groups, perGroup = 4, 3
	e := newEnvOn(t, true, envConfig{broker: []memory.Option{memory.WithTopic("t", perGroup)}})
	hdr := []string{"Kafka-Auto-Commit-Interval", "3600000", "Kafka-Auto-Offset-Reset", "earliest"}
	var wg sync.WaitGroup
	for g := range groups {
		wg.Go(func() {
			for i := range perGroup {
				e.ok("POST", fmt.Sprintf("/consume/g%d/w%d", g, i), `{"topic":"t","timeout":0}`, hdr...)
			}
		})
	}
	wg.Wait()
	for p := range perGroup {
		e.ok("POST", "/produce", fmt.Sprintf(`[{"topic":"t","partition":%d,"value":"a"},{"topic":"t","partition":%d,"value":"b"}]`, p, p))
	}
	// Every group reads its 2*perGroup records, whichever instance owns
	// which partition once the joins settle.
	for g := range groups {
		wg.Go(func() {
			got := 0
			for deadline := time.Now().Add(15 * time.Second); got < 2*perGroup; {
				if time.Now().After(deadline) {
					t.Errorf("g%d read %d of %d", g, got, 2*perGroup)
					return
				}
				for i := range perGroup {
					got += len(decode[[]consumed](t, e.ok("POST", fmt.Sprintf("/consume/g%d/w%d", g, i), `{"topic":"t","timeout":100}`, hdr...)))
				}
			}
		})
	}
	wg.Wait()

	start := time.Now()
	require.NoError(t, e.srv.Close())
	t.Logf("Close of %d instances took %v", groups*perGroup, time.Since(start))
	opts, err := e.kafka.Config.ClientOpts()
	require.NoError(t, err)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	for g := range groups {
		group := fmt.Sprintf("g%d", g)
		for p := range int32(perGroup) {
			off, err := e.backend.Committed(ctx, group, transport.TopicPartition{Topic: "t", Partition: p})
			require.NoError(t, err)
			assert.EqualValues(t, 2, off, "%s partition %d", group, p)
		}
		dg, err := adm.DescribeGroups(ctx, group)
		require.NoError(t, err)
		assert.Empty(t, dg[group].Members, "%s members after Close", group)
	}
}
