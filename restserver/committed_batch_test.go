package restserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
	"github.com/kafkarpc/kafkarpc/resttest"
)

// offsetFetches is a REST server on the Kafka backend in front of kfake
// (whatever KAFKARPC_REST_BACKEND says), with a count of the OffsetFetch
// requests the cluster gets, from the backend or from a consumer
// instance's own client.
type offsetFetches struct {
	*env
	n   atomic.Int64
	adm *kadm.Client // commits as a tool would, without a group member
}

func newOffsetFetches(t *testing.T, topics map[string]int32) *offsetFetches {
	t.Helper()
	kc := kafkatest.Start(t, kafkatest.Config{Topics: topics})
	f := &offsetFetches{}
	kc.Kfake.ControlKey(int16(kmsg.OffsetFetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.Kfake.KeepControl()
		f.n.Add(1)
		return nil, nil, false // observed, answered by the cluster
	})
	s := resttest.Start(t, resttest.Config{
		NewBackend: func(testing.TB) restserver.Backend { return kc.Backend },
		Server:     []restserver.Option{restserver.WithCredentials(testUser, testPass)},
	})
	f.env = &env{t: t, kafka: kc, backend: kc.Backend, srv: s.REST, url: s.URL, client: s.HTTP.Client()}
	opts, err := kc.Config.ClientOpts()
	require.NoError(t, err)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	f.adm = kadm.NewClient(cl)
	return f
}

// during returns how many OffsetFetch requests the cluster got while fn
// ran.
func (f *offsetFetches) during(what string, fn func()) int64 {
	f.t.Helper()
	before := f.n.Load()
	fn()
	n := f.n.Load() - before
	f.t.Logf("%s: %d OffsetFetch requests", what, n)
	return n
}

// commit commits offsets (partition → offset) of topic t for group.
func (f *offsetFetches) commit(group string, offsets map[int32]int64) {
	f.t.Helper()
	var os kadm.Offsets
	for p, at := range offsets {
		os.AddOffset("t", p, at, -1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(f.t, f.adm.CommitAllOffsets(ctx, group, os))
}

// allPartitions is a /committed body naming partitions 0..n-1 of topic t.
func allPartitions(n int) string {
	var list []string
	for p := range n {
		list = append(list, fmt.Sprintf(`{"topic":"t","partition":%d}`, p))
	}
	return "[" + strings.Join(list, ",") + "]"
}

// requireCommitted checks an answer of /committed: the offsets of want,
// -1 for every other of the parts partitions of t, each once.
func requireCommitted(t *testing.T, body string, parts int, want map[int32]int64) {
	t.Helper()
	got := decode[[]tpo](t, body)
	require.Len(t, got, parts, body)
	seen := map[int32]bool{}
	for _, o := range got {
		require.Equal(t, "t", o.Topic)
		require.False(t, seen[o.Partition], "partition %d twice", o.Partition)
		seen[o.Partition] = true
		w, ok := want[o.Partition]
		if !ok {
			w = -1
		}
		assert.Equal(t, w, o.Offset, "partition %d", o.Partition)
	}
}

// TestCommittedOfManyPartitionsIsOneOffsetFetch: on the Kafka backend,
// every committed offset the server looked up was an OffsetFetch of its
// own (kadm's FetchOffsetsForTopics: the group's offsets of every
// partition, and a Metadata request), one per partition: a /committed,
// a scrape's consumer lag or the start checks of a consume with
// Kafka-Auto-Offset-Reset: none over a topic of P partitions took P
// round trips answering P offsets each. Measured on main with P = 64:
// 64, 64 and 65 OffsetFetch requests. They ask for all the partitions in
// one request now.
func TestCommittedOfManyPartitionsIsOneOffsetFetch(t *testing.T) {
	t.Parallel()
	const parts = 64
	f := newOffsetFetches(t, map[string]int32{"t": parts})

	t.Run("POST /committed, a group without members", func(t *testing.T) {
		want := map[int32]int64{3: 7, 10: 1, 63: 42}
		f.commit("tool", want)
		var body string
		n := f.during("POST /committed of 64 partitions", func() { body = f.ok("POST", "/committed/tool/x", allPartitions(parts)) })
		requireCommitted(t, body, parts, want)
		assert.EqualValues(t, 1, n, "OffsetFetch requests for the committed offsets of %d partitions", parts)

		n = f.during("POST /committed of 64 partitions, no group", func() { body = f.ok("POST", "/committed/nobody/x", allPartitions(parts)) })
		requireCommitted(t, body, parts, nil)
		assert.EqualValues(t, 1, n, "OffsetFetch requests of a group that does not exist")
	})

	t.Run("GET /committed and the consumer lag of a live instance", func(t *testing.T) {
		f.ok("POST", "/produce/t", `[{"partition":0,"value":"a"},{"partition":0,"value":"b"},{"partition":5,"value":"c"},{"partition":5,"value":"d"}]`)
		// Read until a record comes: the instance's client has fetched its
		// starting offsets by then (an OffsetFetch of its own).
		got := f.consumeAll("g", "w", `{"topic":"t","timeout":1000}`, 1, "Kafka-Auto-Offset-Reset", "earliest")
		require.NotEmpty(t, got)
		f.ok("POST", "/commit/g/w", `[{"topic":"t","partition":0,"offset":1},{"topic":"t","partition":5,"offset":2}]`)
		want := map[int32]int64{0: 1, 5: 2}

		var body string
		n := f.during("GET /committed of 64 owned partitions", func() { body = f.ok("GET", "/committed/g/w", "") })
		requireCommitted(t, body, parts, want) // the instance owns all the partitions
		// One; two should the group rebalance meanwhile and the
		// instance's client fetch its offsets again.
		assert.LessOrEqual(t, n, int64(2), "OffsetFetch requests of GET /committed of %d owned partitions", parts)

		var fams map[string]*dto.MetricFamily
		n = f.during("a scrape of the lag of 64 partitions", func() { fams = scrape(t, f.env) })
		assert.LessOrEqual(t, n, int64(2), "OffsetFetch requests of a scrape's lag of %d partitions", parts)
		lag := fams["kafka_rest_consumer_lag"]
		require.NotNil(t, lag)
		assert.Len(t, lag.Metric, len(want), "lag series: those of the partitions with a committed offset")
		v, ok := value(lag, "group", "g", "topic", "t", "partition", "0")
		assert.True(t, ok)
		assert.EqualValues(t, 1, v, "partition 0: 2 records, committed 1")
		v, ok = value(lag, "group", "g", "topic", "t", "partition", "5")
		assert.True(t, ok)
		assert.EqualValues(t, 0, v, "partition 5: 2 records, committed 2")
	})

	t.Run("a consume with Kafka-Auto-Offset-Reset none", func(t *testing.T) {
		all := map[int32]int64{}
		for p := range int32(parts) {
			all[p] = 0
		}
		f.commit("strict", all)
		// The check that the group committed something, the check that
		// each partition the instance starts with has a committed offset,
		// and the instance's client's own fetch of its starting offsets.
		n := f.during("a consume with reset none over 64 partitions", func() {
			f.consume("strict", "w", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
		})
		assert.LessOrEqual(t, n, int64(3), "OffsetFetch requests of a consume's start checks over %d partitions", parts)

		// A group without a committed offset is still refused.
		r := f.req("POST", "/consume/unset/w", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
		assert.Contains(t, requireErrorBody(t, r, 400), "no committed offset")
	})

	t.Run("an unacknowledged answer sent again", func(t *testing.T) {
		var recs []string
		for p := range parts {
			recs = append(recs, fmt.Sprintf(`{"partition":%d,"value":"r%d"}`, p, p))
		}
		f.ok("POST", "/produce/t", "["+strings.Join(recs, ",")+"]")
		hdr := []string{restserver.AckHeader, restwire.AckNone, "Kafka-Auto-Offset-Reset", "earliest"}
		var first []consumed
		for deadline := time.Now().Add(10 * time.Second); len(first) == 0 && time.Now().Before(deadline); {
			first = f.consume("ack", "w", `{"topic":"t","timeout":1000}`, hdr...)
		}
		require.NotEmpty(t, first)
		inParts := map[int32]bool{}
		for _, m := range first {
			inParts[m.Partition] = true
		}
		var again []consumed
		n := f.during("an answer sent again", func() { again = f.consume("ack", "w", `{"topic":"t","timeout":0}`, hdr...) })
		assert.Equal(t, first, again, "the unacknowledged answer, again")
		t.Logf("the answer sent again has records of %d partitions", len(inParts))
		assert.LessOrEqual(t, n, int64(2), "OffsetFetch requests of an answer of %d partitions sent again", len(inParts))
	})
}
