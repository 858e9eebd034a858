package kafkabackend_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/restserver/kafkabackend/kafkatest"
)

// TestBreak6JoinStuckOnNotCoordinatorIsBounded: with the coordinator
// answering every JoinGroup NOT_COORDINATOR, a consume creating an
// instance (max timeout 2 s) took 41 s: the join gave up at 2 s, but the
// member's Close (kgo Client.Close) waited for kgo's group loop, which
// retries a retriable JoinGroup error for the whole session timeout (45 s
// by default, and up to the 24 days Kafka-Session-Timeout-Ms allows). The
// same wait held /delete-consumer and the idle janitor. kgo's retries of
// group requests are now bounded by the backend's leave timeout.
func TestBreak6JoinStuckOnNotCoordinatorIsBounded(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Config{Topics: map[string]int32{"t": 2}})
	rs, err := restserver.New(c.Backend, restserver.WithMaxTimeout(2*time.Second), restserver.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	url := serve(t, rs)
	c.Kfake.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.Kfake.KeepControl()
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp, nil, true
	})
	start := time.Now()
	cl := &http.Client{Timeout: 30 * time.Second}
	req, err := http.NewRequest("POST", url+"/consume/g/i", strings.NewReader(`{"topic":"t","timeout":0}`))
	require.NoError(t, err)
	req.Header.Set("Kafka-Session-Timeout-Ms", "600000")
	resp, err := cl.Do(req)
	require.NoError(t, err, "the consume must answer, not hang for the session timeout")
	resp.Body.Close()
	assert.Contains(t, []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout}, resp.StatusCode)
	assert.Less(t, time.Since(start), 12*time.Second)
}
