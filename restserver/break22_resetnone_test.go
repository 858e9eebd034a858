package restserver_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak22ResetNoneRefusesWhenTheStartListingFails: on the Kafka
// backend, a strict (Kafka-Auto-Offset-Reset none) member learns which of
// its partitions have no committed offset in kgo's offset adjustment,
// which first lists the partitions' start offsets; when that listing
// failed, the adjustment returned before noting the uncommitted
// partitions, the join was accepted and the instance answered 200,
// reading partition 1 (never committed) from its end: its record was
// skipped. The failure must not turn the refusal into an acceptance.
func TestBreak22ResetNoneRefusesWhenTheStartListingFails(t *testing.T) {
	t.Parallel()
	e := newEnvOn(t, true, envConfig{broker: []memory.Option{memory.WithTopic("t", 2)}})
	e.commitOnly("g", "t", 0)
	e.ok("POST", "/produce/t", `[{"partition":0,"value":"p0"},{"partition":1,"value":"p1"}]`)

	// The next ListOffsets (the strict member's listing of its starts)
	// fails as a whole; later ones (kgo's own) are answered.
	failed := failNextListOffsets(e)

	r := e.req("POST", "/consume/g/strict", `{"topic":"t","timeout":0}`, "Kafka-Auto-Offset-Reset", "none")
	require.EqualValues(t, 1, failed.Load(), "the listing failed once")
	msg := requireErrorBody(t, r, http.StatusBadRequest)
	assert.Contains(t, msg, `no committed offset for topic "t" partition 1`)
	assert.EqualValues(t, -1, e.committed("g", "x", "t", 1), "nothing committed for partition 1")

	got := e.consumeAll("g", "reader", `{"topic":"t","timeout":1000}`, 2, "Kafka-Auto-Offset-Reset", "earliest")
	assert.ElementsMatch(t, []string{"p0", "p1"}, values(got))
}

// TestBreak22ListingFailureAtJoinLosesNoPartition: on the Kafka backend a
// member pins the start of each newly assigned partition by listing the
// offsets; when that listing failed (as a whole, or for a partition) the
// member left the partition to kgo's reset but did not count it as owned,
// and its Poll drops the records of partitions it does not own: the
// instance read nothing of them until the next rebalance.
func TestBreak22ListingFailureAtJoinLosesNoPartition(t *testing.T) {
	t.Parallel()
	for _, whole := range []bool{true, false} {
		t.Run(map[bool]string{true: "the whole listing", false: "one partition"}[whole], func(t *testing.T) {
			t.Parallel()
			e := newEnvOn(t, true, envConfig{broker: []memory.Option{memory.WithTopic("t", 2)}})
			e.commitOnly("g", "t", 0)
			e.ok("POST", "/produce/t", `[{"partition":0,"value":"p0"},{"partition":1,"value":"p1"}]`)
			var failed atomic.Int32
			e.kafka.Kfake.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				req := kr.(*kmsg.ListOffsetsRequest)
				if !whole {
					// Only a request naming partition 1 is answered with
					// an error for it; the others as usual.
					named := false
					for _, rt := range req.Topics {
						for _, rp := range rt.Partitions {
							named = named || rt.Topic == "t" && rp.Partition == 1
						}
					}
					if !named {
						e.kafka.Kfake.KeepControl()
						return nil, nil, false
					}
				}
				resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
				for _, rt := range req.Topics {
					st := kmsg.NewListOffsetsResponseTopic()
					st.Topic = rt.Topic
					for _, rp := range rt.Partitions {
						sp := kmsg.NewListOffsetsResponseTopicPartition()
						sp.Partition = rp.Partition
						sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
						if !whole {
							// Partition 1 fails (not an error kgo
							// retries); the others answer an offset
							// the member does not use (committed).
							sp.ErrorCode = 0
							if rt.Topic == "t" && rp.Partition == 1 {
								sp.ErrorCode = kerr.UnknownServerError.Code
							}
						}
						st.Partitions = append(st.Partitions, sp)
					}
					resp.Topics = append(resp.Topics, st)
				}
				failed.Add(1)
				return resp, nil, true
			})
			got := e.consumeAll("g", "reader", `{"topic":"t","timeout":1000}`, 2, "Kafka-Auto-Offset-Reset", "earliest")
			require.EqualValues(t, 1, failed.Load(), "the listing failed once")
			assert.ElementsMatch(t, []string{"p0", "p1"}, values(got))
		})
	}
}

// failNextListOffsets makes the next ListOffsets request of the Kafka
// backend's cluster fail for every partition it names (kfake answers the
// later ones): it returns the count of the requests it failed.
func failNextListOffsets(e *env) *atomic.Int32 {
	var failed atomic.Int32
	e.kafka.Kfake.ControlKey(int16(kmsg.ListOffsets), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		failed.Add(1)
		return resp, nil, true
	})
	return &failed
}
