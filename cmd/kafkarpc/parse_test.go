package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseInterleaved(t *testing.T) {
	cases := []struct {
		args   []string
		pos    []string
		method string
		json   bool
	}{
		{[]string{"reports", "{}"}, []string{"reports", "{}"}, "", false},
		{[]string{"--method", "m", "reports", "{}"}, []string{"reports", "{}"}, "m", false},
		{[]string{"reports", "{}", "--method", "m", "--json"}, []string{"reports", "{}"}, "m", true},
		{[]string{"reports", "--json", "-"}, []string{"reports", "-"}, "", true},
		{[]string{"reports", "--", "-5", "--json"}, []string{"reports", "-5", "--json"}, "", false},
		{[]string{"-method=x", "reports"}, []string{"reports"}, "x", false},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		method := fs.String("method", "", "")
		js := fs.Bool("json", false, "")
		pos, err := parseInterleaved(fs, c.args)
		require.NoError(t, err, "%q", c.args)
		assert.Equal(t, c.pos, pos, "%q", c.args)
		assert.Equal(t, c.method, *method, "%q", c.args)
		assert.Equal(t, c.json, *js, "%q", c.args)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := parseInterleaved(fs, []string{"reports", "--nope"})
	assert.ErrorContains(t, err, "nope")
}

func TestExecError(t *testing.T) {
	for _, c := range []struct {
		status int
		stderr string
		want   string
	}{
		{1, "not_found: no such report\n", "not_found: no such report"},
		{1, "working\nINVALID_ARGUMENT: bad month", "internal: INVALID_ARGUMENT: bad month (exit status 1)"},
		{2, "Error: boom", "internal: Error: boom (exit status 2)"},
		{3, "", "internal: the command exited with status 3"},
		{exitTempFail, "", "unavailable: temporary failure"},
		{exitTempFail, "aborted: lock held", "aborted: lock held"},
	} {
		assert.Equal(t, c.want, execError(c.status, c.stderr).Error(), "%d %q", c.status, c.stderr)
	}
}

func TestPercentile(t *testing.T) {
	assert.Zero(t, percentile(nil, 0.5))
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	assert.Equal(t, time.Duration(50), percentile(d, 0.50))
	assert.Equal(t, time.Duration(99), percentile(d, 0.99))
	assert.Equal(t, time.Duration(1), percentile(d[:1], 0.99))
}
