package kafka_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/kafkarpc/kafkarpc/rpc"
	"github.com/kafkarpc/kafkarpc/transport/kafka"
)

// Rare commits: the replaced process learns of its replacement only at its
// next heartbeat. With the same heartbeat interval on both, the new one's
// hold covers it.
func TestBreak9ReplacementWithRareCommits(t *testing.T) {
	twice, after := runReplacement(t, replacement{
		oldOpts: []kafka.Option{kafka.HeartbeatInterval(time.Second)},
		newOpts: []kafka.Option{kafka.HeartbeatInterval(time.Second)},
		oldSrv:  []rpc.ServerOption{rpc.WithCommitInterval(30 * time.Second)},
		newSrv:  []rpc.ServerOption{rpc.WithCommitInterval(30 * time.Second)},
	})
	t.Logf("%d requests run twice; %d handlers started on the replaced process after the new one served", twice, after)
	assert.LessOrEqual(t, twice, break9Concurrency, "requests run by both the replaced and the new instance")
}

// BUG (fixed): the same HeartbeatInterval option on both, but the new
// process has a shorter session timeout, which lowers its heartbeat to a
// fifth of it: its hold (its own heartbeat, 200 ms) ended before the old
// process (1 s) learned of the replacement; 207-212 requests ran twice. The
// hold is now the HeartbeatInterval option.
func TestBreak9ReplacementWithShorterSession(t *testing.T) {
	twice, after := runReplacement(t, replacement{
		oldOpts: []kafka.Option{kafka.HeartbeatInterval(time.Second)},
		newOpts: []kafka.Option{kafka.HeartbeatInterval(time.Second)},
		oldSrv:  []rpc.ServerOption{rpc.WithCommitInterval(30 * time.Second)},
		newSrv:  []rpc.ServerOption{rpc.WithCommitInterval(30 * time.Second), rpc.WithSessionTimeout(time.Second)},
	})
	t.Logf("%d requests run twice; %d handlers started on the replaced process after the new one served", twice, after)
	assert.LessOrEqual(t, twice, break9Concurrency, "requests run by both the replaced and the new instance")
}

// The replaced process heartbeats less often (3 s) than the new one holds
// (1 s): outside the documented rule (members share HeartbeatInterval). On
// kfake it held anyway: the old process stopped about 400 ms after the
// replacement in every run (before its heartbeat; not investigated).
func TestBreak9ReplacementSlowerOldHeartbeat(t *testing.T) {
	twice, after := runReplacement(t, replacement{
		oldOpts: []kafka.Option{kafka.HeartbeatInterval(3 * time.Second)},
		newOpts: []kafka.Option{kafka.HeartbeatInterval(time.Second)},
		oldSrv:  []rpc.ServerOption{rpc.WithCommitInterval(30 * time.Second)},
		newSrv:  []rpc.ServerOption{rpc.WithCommitInterval(30 * time.Second)},
	})
	t.Logf("%d requests run twice; %d handlers started on the replaced process after the new one served", twice, after)
	assert.LessOrEqual(t, twice, break9Concurrency, "requests run by both the replaced and the new instance")
}
