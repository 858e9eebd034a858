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

// TestF16JoinThatMeetsARejoinAnswers: on the Kafka backend, a consume that
// creates its instance waits for the member's first assignment; when the
// group drops the member or rebalances during that join (its SyncGroup
// answered UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION, as when another member
// joins or leaves at that moment), kgo rejoins by itself, and a later Poll
// takes that error for a window without records.
// The join took it for a failure: the instance was closed and the consume
// answered 503 (seen in TestIdleInstancesExpire on kfake, about one run in
// twenty: the expired instance's leave met the next instance's join).
func TestF16JoinThatMeetsARejoinAnswers(t *testing.T) {
	t.Parallel()
	for _, code := range []*kerr.Error{kerr.UnknownMemberID, kerr.IllegalGeneration} {
		t.Run(code.Message, func(t *testing.T) {
			t.Parallel()
			e := newEnvOn(t, true, envConfig{broker: []memory.Option{memory.WithTopic("t", 1)}})
			e.ok("POST", "/produce/t", `{"value":"x"}`)
			var failed atomic.Int32
			e.kafka.Kfake.ControlKey(int16(kmsg.SyncGroup), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				resp := kr.(*kmsg.SyncGroupRequest).ResponseKind().(*kmsg.SyncGroupResponse)
				resp.ErrorCode = code.Code
				failed.Add(1)
				return resp, nil, true // once: later SyncGroups are kfake's
			})
			r := e.req("POST", "/consume/g/i", `{"topic":"t","timeout":1000}`, "Kafka-Auto-Offset-Reset", "earliest")
			require.EqualValues(t, 1, failed.Load(), "the first SyncGroup failed")
			require.Equal(t, http.StatusOK, r.status, r.body)
			got := decode[[]consumed](t, r.body)
			if len(got) == 0 {
				got = e.consumeAll("g", "i", `{"topic":"t","timeout":1000}`, 1)
			}
			assert.Equal(t, []string{"x"}, values(got))
		})
	}
}
