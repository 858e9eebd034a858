package restserver_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestBreak4AnonymousRequestsLockOutAdmin: requests carrying no
// credentials at all (a health checker, a misconfigured client, or an
// attacker behind the same proxy/NAT address) are counted as failed
// logins; after 60 of them the admin, from the same address and with the
// right password, is answered 429 for everything. No guessing is involved,
// so counting them protects nothing, and one credential-less request a
// second keeps every user of the address locked out for good.
func TestBreak4AnonymousRequestsLockOutAdmin(t *testing.T) {
	e := newPermEnv(t)
	for range 60 {
		r := e.req("GET", "/topics", "", "Authorization", "-")
		assert.Equal(t, http.StatusUnauthorized, r.status, r.body)
	}
	r := e.req("GET", "/topics", "", asOps...)
	assert.Equal(t, http.StatusOK, r.status, "admin with the right password, after 60 credential-less requests from its address: %s", r.body)
}
