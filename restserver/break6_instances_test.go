package restserver_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak6InstancesAreCapped: any client could create consumer instances
// without limit, one per new group/instance name in a consume, each kept
// for the 5 min idle expiry. In front of Kafka each instance is a kgo
// client of its own: measured over kfake, 40 instances cost +807
// goroutines and +324 file descriptors (both ends on loopback), so a loop
// of consumes with fresh names exhausted the server's file descriptors and
// memory long before any instance expired. Now WithMaxInstances (default
// 1000, --max-instances) caps them: past it a consume that would create
// one more is a 503 with Retry-After, and existing instances still work.
func TestBreak6InstancesAreCapped(t *testing.T) {
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithPartitions(1)},
		server: []restserver.Option{restserver.WithMaxInstances(3)},
	})
	e.createTopic("t", 1)
	for i := range 3 {
		e.ok("POST", fmt.Sprintf("/consume/g%d/i", i), `{"topic":"t","timeout":0}`)
	}
	r := e.req("POST", "/consume/g9/i", `{"topic":"t","timeout":0}`)
	requireErrorBody(t, r, http.StatusServiceUnavailable)
	assert.Contains(t, r.body, "too many consumer instances")
	assert.NotEmpty(t, r.header.Get("Retry-After"))

	e.ok("POST", "/consume/g0/i", `{"topic":"t","timeout":0}`) // an existing one still consumes
	e.ok("POST", "/delete-consumer/g1/i", "")
	e.ok("POST", "/consume/g9/i", `{"topic":"t","timeout":0}`) // room again
}
