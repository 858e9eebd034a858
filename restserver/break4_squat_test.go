package restserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// TestBreak4InstanceNameSquatting: instance names are one namespace for
// all users and groups are not owned, so a user that may consume only
// "orders" can take the group/instance name another user's application
// is configured with (here user billing's billing/worker-1, reading "secret", a
// topic the squatter may not even see) before it starts — or right after
// its instance expires or is deleted — and keep it by consuming now and
// then. The rightful application then gets 403 on every consume, for as
// long as the squatter likes; nothing but an admin's delete-consumer
// (repeated each time) frees it.
func TestBreak4InstanceNameSquatting(t *testing.T) {
	e := newEnv(t, envConfig{
		broker: []memory.Option{memory.WithPartitions(1)},
		server: []restserver.Option{restserver.WithUsers(
			restserver.User{Name: "reader", Password: "r-pass", Consume: []restserver.TopicPattern{"orders"}},
			restserver.User{Name: "billing", Password: "b-pass", Consume: []restserver.TopicPattern{"secret"}},
		)},
	})
	e.createTopic("orders", 1)
	e.createTopic("secret", 1)
	e.ok("POST", "/consume/billing/worker-1", `{"topic":"orders","timeout":0}`, asReader...)

	r := e.req("POST", "/consume/billing/worker-1", `{"topic":"secret","timeout":0}`, basicAuth("billing", "b-pass")...)
	assert.Equal(t, http.StatusOK, r.status, "the owner of the application cannot use its own instance name: %s", r.body)
}
