package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestRunUsersFile(t *testing.T) {
	users := writeFile(t, `# kafka-rest users
{"name":"app","password":"app-pass-1","produce":["orders"],"consume":["orders*"]}
{"name":"ops","password":"ops-pass-2","admin":true}
`)
	url, logs, stop := start(t, "--addr", "127.0.0.1:0", "--topics", "orders,orders.eu,secret",
		"--users", users, "--username", "root", "--password", "root-pass-3")

	status, body := get(t, "POST", url+"/produce/orders", "app", "app-pass-1", `{"value":"x"}`)
	assert.Equal(t, http.StatusOK, status, body)
	status, body = get(t, "POST", url+"/produce/secret", "app", "app-pass-1", `{"value":"x"}`)
	assert.Equal(t, http.StatusForbidden, status)
	assert.JSONEq(t, `{"error":"user \"app\" may not produce to topic \"secret\"","status":403}`, body)
	status, body = get(t, "POST", url+"/fetch", "app", "app-pass-1", `{"topic":"orders.eu","partition":0,"offset":0,"timeout":0}`)
	assert.Equal(t, http.StatusOK, status, body)
	status, body = get(t, "GET", url+"/topics", "app", "app-pass-1", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"orders":1,"orders.eu":1}`, body)
	status, _ = get(t, "GET", url+"/consumers", "app", "app-pass-1", "")
	assert.Equal(t, http.StatusForbidden, status)
	for _, admin := range [][2]string{{"ops", "ops-pass-2"}, {"root", "root-pass-3"}} {
		status, body = get(t, "GET", url+"/consumers", admin[0], admin[1], "")
		assert.Equal(t, http.StatusOK, status, body)
		status, body = get(t, "POST", url+"/produce/secret", admin[0], admin[1], `{"value":"x"}`)
		assert.Equal(t, http.StatusOK, status, body)
	}
	status, _ = get(t, "GET", url+"/topics", "app", "wrong", "")
	assert.Equal(t, http.StatusUnauthorized, status)

	require.NoError(t, stop())
	for _, pass := range []string{"app-pass-1", "ops-pass-2", "root-pass-3"} {
		assert.NotContains(t, logs.String(), pass)
	}
}

func TestRunUsersFileErrors(t *testing.T) {
	for _, c := range []struct{ name, content, want string }{
		{"unknown field", "{\"name\":\"a\",\"password\":\"pw-secret\",\"admin\":true}\n{\"name\":\"b\",\"password\":\"pw-secret\",\"writes\":[\"x\"]}\n",
			`users file line 2: not a valid user object: unknown field "writes"`},
		{"bad line", "\n\nuser a pw-secret\n", "users file line 3: not a JSON object"},
		{"empty", "# nobody\n", "no user defined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--users", writeFile(t, c.content)}, io.Discard, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "--users ")
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "pw-secret")
		})
	}
	err := run(context.Background(), []string{"--users", filepath.Join(t.TempDir(), "missing")}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "--users: open")

	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, &stdout, io.Discard))
	assert.Contains(t, stdout.String(), "-users file")
	assert.Contains(t, stdout.String(), `"prefix*"`)
}
