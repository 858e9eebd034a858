package kafkabackend_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/transport"
)

// TestBreak22ListsOverThreeBrokersAnswerEachPartition: on a cluster of
// three brokers (the partitions' leaders spread over them, so kgo splits
// ListOffsets per leader), ListOffsets and ListCommitted of partitions of
// several topics, shuffled and repeated, answer each partition what
// Offsets and kadm's own OffsetFetch answer for it alone.
func TestBreak22ListsOverThreeBrokersAnswerEachPartition(t *testing.T) {
	t.Parallel()
	topics := map[string]int32{"a": 7, "b": 5, "c": 1}
	c := kafkatest.Start(t, kafkatest.Config{Brokers: 3, Topics: topics})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts, err := c.Config.ClientOpts()
	require.NoError(t, err)
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	require.NoError(t, err)
	defer cl.Close()

	// Partition p of each topic gets a distinct number of records, and
	// group g commits a distinct offset of some.
	var all []transport.TopicPartition
	var commits kadm.Offsets
	for topic, n := range topics {
		for p := range n {
			all = append(all, transport.TopicPartition{Topic: topic, Partition: p})
			k := int(p)*3 + len(topic) + 1
			for i := range k {
				require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d", i)}).FirstErr())
			}
			if p%2 == 0 {
				commits.AddOffset(topic, p, int64(k-1), -1)
			}
		}
	}
	adm := kadm.NewClient(cl)
	require.NoError(t, adm.CommitAllOffsets(ctx, "g", commits))
	// Some log starts move: the earliest offsets differ from 0.
	var del kadm.Offsets
	for _, tp := range all {
		if tp.Partition%3 == 1 {
			del.AddOffset(tp.Topic, tp.Partition, 1, -1)
		}
	}
	_, err = adm.DeleteRecords(ctx, del)
	require.NoError(t, err)

	// The leaders are spread over the brokers.
	md, err := adm.Metadata(ctx)
	require.NoError(t, err)
	leaders := map[int32]bool{}
	for _, td := range md.Topics {
		for _, pd := range td.Partitions {
			leaders[pd.Leader] = true
		}
	}
	require.Len(t, leaders, 3, "leaders of the partitions")
	fetched, err := adm.FetchOffsets(ctx, "g")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(22, 2))
	for range 5 {
		tps := append([]transport.TopicPartition(nil), all...)
		tps = append(tps, all[rng.IntN(len(all))], all[rng.IntN(len(all))])
		rng.Shuffle(len(tps), func(i, j int) { tps[i], tps[j] = tps[j], tps[i] })

		first, err := c.Backend.ListOffsets(ctx, tps, true)
		require.NoError(t, err)
		next, err := c.Backend.ListOffsets(ctx, tps, false)
		require.NoError(t, err)
		committed, err := c.Backend.ListCommitted(ctx, "g", tps)
		require.NoError(t, err)
		require.Contains(t, first, int64(1), "a log start moved")
		for i, tp := range tps {
			f, n, err := c.Backend.Offsets(ctx, tp)
			require.NoError(t, err)
			require.Equal(t, f, first[i], "earliest of %v", tp)
			require.Equal(t, n, next[i], "next of %v", tp)
			want := int64(-1)
			if o, ok := fetched.Lookup(tp.Topic, tp.Partition); ok {
				want = o.At
			}
			require.Equal(t, want, committed[i], "committed of %v", tp)
		}
	}

	// The group deleted: every committed offset -1, no error.
	dg, err := adm.DeleteGroup(ctx, "g")
	require.NoError(t, err)
	require.NoError(t, dg.Err)
	committed, err := c.Backend.ListCommitted(ctx, "g", all)
	require.NoError(t, err)
	for i, off := range committed {
		require.EqualValues(t, -1, off, "committed of %v after the group was deleted", all[i])
	}

	// A topic deleted meanwhile (the backend's metadata cache still has
	// it): a listing naming it fails as the topic's unknown; one without
	// it still answers.
	_, err = adm.DeleteTopics(ctx, "c")
	require.NoError(t, err)
	var rest []transport.TopicPartition
	for _, tp := range all {
		if tp.Topic != "c" {
			rest = append(rest, tp)
		}
	}
	_, err = c.Backend.ListOffsets(ctx, all, false)
	require.ErrorIs(t, err, transport.ErrUnknownTopic, "a listing naming a deleted topic")
	next, err := c.Backend.ListOffsets(ctx, rest, false)
	require.NoError(t, err)
	for i, tp := range rest {
		_, n, err := c.Backend.Offsets(ctx, tp)
		require.NoError(t, err)
		require.Equal(t, n, next[i], "next of %v", tp)
	}
}
