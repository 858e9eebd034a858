package restserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak4ConsumeOnlyUserFillsTopicCap: a user with only the consume
// right ("logs.*") creates topics by consuming names that do not exist,
// and one /consume naming many of them fills the broker's topic cap (the
// topics made before the cap was hit stay, although the request fails).
// From then on the user with the produce right on logs.* cannot create a
// topic it is entitled to. Producing is the right that writes; a refused
// produce creates no topic (TestPermProduce), but a consume does.
func TestBreak4ConsumeOnlyUserFillsTopicCap(t *testing.T) {
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithPartitions(1), memory.WithMaxTopics(50, 1000)},
		server: []restserver.Option{restserver.WithUsers(
			restserver.User{Name: "writer", Password: "w-pass", Produce: []restserver.TopicPattern{"orders", "logs.*"}},
			restserver.User{Name: "reader", Password: "r-pass", Consume: []restserver.TopicPattern{"orders", "logs.*"}},
		)},
	})
	e.createTopic("orders", 1)
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("logs.junk%03d", i)
	}
	body, _ := json.Marshal(map[string]any{"topics": names, "timeout": 0})
	r := e.req("POST", "/consume/g/i", string(body), asReader...)
	t.Logf("reader's consume: %d %s", r.status, r.body)
	t.Logf("topics now: %d", len(e.topics()))
	assert.Len(t, e.topics(), 1, "a consume-only user created topics")

	r = e.req("POST", "/produce/logs.app", `{"value":"a"}`, asWriter...)
	assert.Equal(t, http.StatusOK, r.status, "the producer may no longer create its topic: %s", r.body)
}
