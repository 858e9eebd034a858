package main

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A flag error is an error even when the stop (ctx canceled) came at the
// same moment: only an error of reaching Kafka is taken for the stop's
// doing. Before, run returned nil and logged "stopped before it started"
// at info level with the flag error, and the process exited 0.
func TestBreak18FlagErrorIsAnErrorWhenStoppedMeanwhile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range [][]string{
		{"--addr", "127.0.0.1:0", "--brokers", "127.0.0.1:1", "--partitions", "3"},
		{"--addr", "127.0.0.1:0", "--brokers", "127.0.0.1:1", "--kafka-connect-timeout", "0s"},
	} {
		logs := &syncBuffer{}
		err := run(ctx, args, io.Discard, logs)
		require.Error(t, err, "%v; log:\n%s", args, logs.String())
		assert.NotContains(t, logs.String(), "stopped before it started")
	}
}
