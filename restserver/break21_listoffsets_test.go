package restserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/resttest"
)

// TestOffsetsOfManyPartitionsAreOneListOffsets: on the Kafka backend every
// end offset the server looked up was Offsets of one partition, two
// ListOffsets requests (its start and its end): a scrape's consumer lag,
// a POST /offsets/latest and a /fetch over a topic of P partitions took
// 2P round trips. Measured before the fix with P = 64: 128 ListOffsets
// requests each. They ask for all the partitions at once now.
func TestOffsetsOfManyPartitionsAreOneListOffsets(t *testing.T) {
	t.Parallel()
	const parts = 64
	kc := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": parts}})
	var n atomic.Int64
	kc.Kfake.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.Kfake.KeepControl()
		n.Add(1)
		return nil, nil, false // observed, answered by the cluster
	})
	s := resttest.Start(t, resttest.Config{
		NewBackend: func(testing.TB) restserver.Backend { return kc.Backend },
		Server:     []restserver.Option{restserver.WithCredentials(testUser, testPass)},
	})
	e := &env{t: t, kafka: kc, backend: kc.Backend, srv: s.REST, url: s.URL, client: s.HTTP.Client()}
	during := func(what string, fn func()) int64 {
		t.Helper()
		before := n.Load()
		fn()
		got := n.Load() - before
		t.Logf("%s: %d ListOffsets requests", what, got)
		return got
	}

	// Two records in each partition; group g commits offset 1 of each.
	var recs []string
	for p := range parts {
		recs = append(recs, fmt.Sprintf(`{"partition":%d,"value":"a"},{"partition":%d,"value":"b"}`, p, p))
	}
	e.ok("POST", "/produce/t", "["+strings.Join(recs, ",")+"]")
	opts, err := kc.Config.ClientOpts()
	require.NoError(t, err)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	var os kadm.Offsets
	for p := range int32(parts) {
		os.AddOffset("t", p, 1, -1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, kadm.NewClient(cl).CommitAllOffsets(ctx, "g", os))

	t.Run("the consumer lag of a scrape", func(t *testing.T) {
		// A live instance owning the 64 partitions, reading from the
		// committed offsets: its client has fixed its starts by then.
		got := e.consumeAll("g", "w", `{"topic":"t","timeout":1000}`, 1, "Kafka-Enable-Auto-Commit", "false")
		require.NotEmpty(t, got)
		c := during("a scrape of the lag of 64 partitions", func() {
			lag := scrape(t, e)["kafka_rest_consumer_lag"]
			require.NotNil(t, lag)
			assert.Len(t, lag.Metric, parts)
			for p := range parts {
				v, ok := value(lag, "group", "g", "topic", "t", "partition", fmt.Sprint(p))
				assert.True(t, ok, "partition %d", p)
				assert.EqualValues(t, 1, v, "partition %d: 2 records, committed 1", p)
			}
		})
		assert.LessOrEqual(t, c, int64(2), "ListOffsets requests of a scrape's lag of %d partitions", parts)
	})

	t.Run("POST /offsets of 64 partitions", func(t *testing.T) {
		for _, which := range []string{"earliest", "latest"} {
			var body string
			c := during("POST /offsets/"+which+" of 64 partitions", func() {
				body = e.ok("POST", "/offsets/"+which, allPartitions(parts))
			})
			got := decode[[]tpo](t, body)
			require.Len(t, got, parts)
			for i, o := range got {
				assert.Equal(t, tpo{Topic: "t", Partition: int32(i), Offset: map[string]int64{"earliest": 0, "latest": 2}[which]}, o)
			}
			assert.LessOrEqual(t, c, int64(1), "ListOffsets requests of POST /offsets/%s of %d partitions", which, parts)
		}
	})

	t.Run("a fetch of 64 partitions", func(t *testing.T) {
		var from []string
		for p := range parts {
			from = append(from, fmt.Sprintf(`{"topic":"t","partition":%d,"offset":1}`, p))
		}
		var body string
		c := during("a /fetch of 64 partitions", func() {
			body = e.ok("POST", "/fetch", `{"topicPartitionOffsets":[`+strings.Join(from, ",")+`],"timeout":0}`)
		})
		got := decode[[]consumed](t, body)
		assert.Len(t, got, parts, "each partition's record at offset 1")
		assert.LessOrEqual(t, c, int64(2), "ListOffsets requests of a /fetch of %d partitions (their starts and their ends)", parts)
	})
}
