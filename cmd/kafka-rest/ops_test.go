package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunOperations checks /healthz, /readyz and /metrics of the binary's
// server, and that --access-log logs each request with no credentials,
// whether given as Basic auth (right or wrong) or in a webhook query.
func TestRunOperations(t *testing.T) {
	const user, pass = "ops-admin-7f3a", "s3cr3t-Pa55word-ops"
	url, logs, stop := start(t, "--addr", "127.0.0.1:0", "--topics", "orders", "--username", user, "--password", pass, "--access-log")

	status, body := get(t, "GET", url+"/healthz", "", "", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	status, body = get(t, "GET", url+"/readyz", "", "", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"status":"ready"}`, body)

	status, _ = get(t, "POST", url+"/produce/orders", user, pass, `{"value":"x"}`)
	require.Equal(t, http.StatusOK, status)
	status, _ = get(t, "GET", url+"/topics", user, "wrong-"+pass, "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = get(t, "POST", url+"/webhook?topic=orders&user="+user+"&pass="+pass, "", "", "raw")
	require.Equal(t, http.StatusOK, status)

	status, _ = get(t, "GET", url+"/metrics", "", "", "")
	assert.Equal(t, http.StatusUnauthorized, status, "/metrics needs admin credentials when auth is on")
	status, body = get(t, "GET", url+"/metrics", user, pass, "")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `kafka_rest_produced_records_total{topic="orders"} 2`)
	assert.Contains(t, body, `kafka_rest_http_requests_total{route="produce",code="200"} 1`)

	require.NoError(t, stop())
	out := logs.String()
	access := 0
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "msg=access") {
			access++
		}
	}
	assert.Equal(t, 7, access, "one access line per request:\n%s", out)
	assert.Contains(t, out, "path=/produce/orders status=200")
	assert.Contains(t, out, "path=/topics status=401")
	assert.Contains(t, out, "path=/webhook status=200")
	for _, secret := range []string{pass, user, "pass=", "user="} {
		assert.NotContains(t, out, secret)
	}
}

func TestRunWithoutAccessLog(t *testing.T) {
	url, logs, stop := start(t, "--addr", "127.0.0.1:0")
	status, _ := get(t, "GET", url+"/healthz", "", "", "")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, stop())
	assert.NotContains(t, logs.String(), "msg=access")
}
