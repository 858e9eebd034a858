package upstash

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/transport"
)

// TestC15UnknownRouteOfACommitIsInvalid: Error.Unwrap's doc (1390b94) says a
// 404 for a route the server does not serve is transport.ErrInvalid; a
// commit's (a wrong path in the URL before /commit/...) matched the
// commit's 404 rule first, transport.ErrNotAssigned, which a consumer takes
// for a rebalance (its records read again) rather than a permanent error.
func TestC15UnknownRouteOfACommitIsInvalid(t *testing.T) {
	err := &Error{Status: 404, Method: "POST", Path: "/commit/g/i", Message: "unknown route POST /v1/commit/g/i"}
	assert.ErrorIs(t, err, transport.ErrInvalid)
	assert.NotErrorIs(t, err, transport.ErrNotAssigned)
	// A commit's 404 for its instance stays ErrNotAssigned.
	gone := &Error{Status: 404, Method: "POST", Path: "/commit/g/i", Message: `consumer instance "i" of group "g" does not exist: a consume creates it`}
	assert.ErrorIs(t, gone, transport.ErrNotAssigned)
}
