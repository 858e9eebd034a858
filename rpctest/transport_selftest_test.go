package rpctest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/rpctest"
	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// brokenEnv names the fault TestBrokenTransport injects; it is set only in
// the child processes of TestSuiteCatchesBrokenTransports.
const brokenEnv = "RPCTEST_BROKEN_TRANSPORT"

// TestSuiteCatchesBrokenTransports checks that the suite can fail: for each
// fault, it runs the case meant to catch it against the embedded broker with
// that fault injected, in a child process, and requires that case to fail.
func TestSuiteCatchesBrokenTransports(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("child process")
	}
	if testing.Short() {
		t.Skip("checks the suite itself; skipped with -short")
	}
	tests := []struct{ fault, caseName string }{
		{"produce-drops-headers", "ProducePollRoundTrip"},
		{"produce-time-not-ms", "ProducePollRoundTrip"},
		{"produce-accepts-bad-partition", "ProduceInvalidIsAllOrNothing"},
		{"produce-batch-not-atomic", "ProduceInvalidIsAllOrNothing"},
		{"produce-key-random-partition", "KeyPicksStablePartition"},
		{"produce-keyless-one-partition", "KeylessRecordsSpread"},
		{"produce-ignores-manual-partition", "ManualPartitionHonoured"},
		{"subscribe-accepts-no-group", "SubscribeRejectsInvalid"},
		{"subscribe-latest-is-earliest", "StartEarliestAndLatest"},
		{"poll-duplicates-a-record", "GroupSharesPartitions"},
		{"commit-does-nothing", "CommitAndResume"},
		{"commit-offset-not-plus-one", "CommitAndResume"},
		{"commit-last-message-only", "CommitAndResume"},
		{"commit-not-owned-partially", "CommitNotOwned"},
		{"commit-not-owned-succeeds", "CommitNotOwned"},
		{"fenced-reported-as-closed", "FencedByNewInstance"},
		{"busy-member-dropped-after-session", "HeartbeatKeepsBusyMember"},
		{"max-poll-interval-ignored", "RedeliveryAfterMaxPollInterval"},
		{"on-revoked-never-called", "OnRevokedOnRebalance"},
		{"on-revoked-called-on-close", "OnRevokedOnRebalance"},
		{"cancelled-poll-drops-records", "CancelledPollLosesNothing"},
		{"consumer-closed-error-not-wrapped", "ConsumerClose"},
		{"transport-close-fails-twice", "TransportClose"},
		{"tail-reads-from-start", "TailReadsFromEnd"},
	}
	exe, err := os.Executable()
	require.NoError(t, err)

	// The children mostly wait, so run several at once.
	type result struct {
		out []byte
		err error
	}
	results := make([]result, len(tests))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for i, tt := range tests {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(t.Context(), 2*rpctest.CaseTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run", "^TestBrokenTransport$/^"+tt.caseName+"$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tt.fault)
			out, err := cmd.CombinedOutput()
			results[i] = result{out, err}
		})
	}
	wg.Wait()
	for i, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			out, err := results[i].out, results[i].err
			require.Error(t, err, "the suite passed a transport whose fault is %s:\n%s", tt.fault, out)
			require.Contains(t, string(out), "--- FAIL: TestBrokenTransport/"+tt.caseName,
				"case %s did not catch fault %s:\n%s", tt.caseName, tt.fault, out)
		})
	}
}

// TestBrokenTransport runs the suite against the embedded broker with the
// fault named by the environment; it is a helper of
// TestSuiteCatchesBrokenTransports and is skipped otherwise.
func TestBrokenTransport(t *testing.T) {
	fault := os.Getenv(brokenEnv)
	if fault == "" {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenTransports")
	}
	rpctest.TestTransport(t, func(t testing.TB) transport.Transport {
		return &brokenTransport{Broker: newMemory(), fault: fault}
	}, memoryFeatures)
}

// brokenTransport is the embedded broker with one fault.
type brokenTransport struct {
	*memory.Broker
	fault  string
	closed atomic.Bool
}

func (b *brokenTransport) Produce(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error) {
	in := append([]transport.Message(nil), msgs...)
	for i := range in {
		m := &in[i]
		switch {
		case b.fault == "produce-ignores-manual-partition":
			m.ManualPartition = false
		case b.fault == "produce-accepts-bad-partition" && m.ManualPartition && (m.Partition < 0 || m.Partition >= memoryPartitions):
			m.Partition = 0
		case b.fault == "produce-key-random-partition" && m.Key != "" && !m.ManualPartition:
			m.ManualPartition, m.Partition = true, int32(time.Now().UnixNano()%memoryPartitions)
		case b.fault == "produce-keyless-one-partition" && m.Key == "" && !m.ManualPartition:
			m.ManualPartition, m.Partition = true, 0
		}
	}
	if b.fault == "produce-batch-not-atomic" && len(in) > 1 {
		first, err := b.Broker.Produce(ctx, in[0])
		if err != nil {
			return nil, err
		}
		rest, err := b.Broker.Produce(ctx, in[1:]...)
		if err != nil {
			return nil, err
		}
		return append(first, rest...), nil
	}
	out, err := b.Broker.Produce(ctx, in...)
	for i := range out {
		switch b.fault {
		case "produce-drops-headers":
			out[i].Headers = nil
		case "produce-time-not-ms":
			out[i].Time = out[i].Time.Add(123 * time.Microsecond)
		}
	}
	return out, err
}

func (b *brokenTransport) Subscribe(ctx context.Context, s transport.Subscription) (transport.Consumer, error) {
	switch {
	case b.fault == "subscribe-latest-is-earliest":
		s.Start = transport.StartEarliest
	case b.fault == "subscribe-accepts-no-group" && s.Group == "":
		s.Group = "made-up"
	case b.fault == "busy-member-dropped-after-session" && s.SessionTimeout > 0:
		// Only Poll counts as liveness, as before issue 13.
		s.MaxPollInterval = s.SessionTimeout
	case b.fault == "max-poll-interval-ignored":
		s.MaxPollInterval = 0
	case b.fault == "on-revoked-never-called":
		s.OnRevoked = nil
	}
	c, err := b.Broker.Subscribe(ctx, s)
	if err != nil {
		return nil, err
	}
	return &brokenConsumer{Consumer: c, fault: b.fault, onRevoked: s.OnRevoked}, nil
}

func (b *brokenTransport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	if b.fault == "tail-reads-from-start" {
		return b.Subscribe(ctx, transport.Subscription{Group: "tail-" + time.Now().String(), Topics: topics, Start: transport.StartEarliest})
	}
	c, err := b.Broker.Tail(ctx, topics...)
	if err != nil {
		return nil, err
	}
	return &brokenConsumer{Consumer: c, fault: b.fault}, nil
}

func (b *brokenTransport) Close() error {
	err := b.Broker.Close()
	if b.closed.Swap(true) && b.fault == "transport-close-fails-twice" {
		return errors.New("already closed")
	}
	return err
}

// brokenConsumer is a consumer of the embedded broker with one fault.
type brokenConsumer struct {
	transport.Consumer
	fault     string
	onRevoked func([]transport.TopicPartition)

	mu    sync.Mutex
	polls int
}

func (c *brokenConsumer) Poll(ctx context.Context) ([]transport.Message, error) {
	switch c.fault {
	case "cancelled-poll-drops-records":
		// Like a network client that gives up on a response it asked for:
		// records taken after ctx ends are lost.
		for {
			inner, cancel := context.WithTimeout(context.WithoutCancel(ctx), 50*time.Millisecond)
			msgs, err := c.Consumer.Poll(inner)
			cancel()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if len(msgs) > 0 || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
				return msgs, err
			}
		}
	case "consumer-closed-error-not-wrapped":
		msgs, err := c.Consumer.Poll(ctx)
		if errors.Is(err, transport.ErrClosed) {
			err = errors.New("consumer closed")
		}
		return msgs, err
	case "fenced-reported-as-closed":
		msgs, err := c.Consumer.Poll(ctx)
		if errors.Is(err, transport.ErrFenced) {
			err = transport.ErrClosed
		}
		return msgs, err
	}
	msgs, err := c.Consumer.Poll(ctx)
	if c.fault == "poll-duplicates-a-record" && len(msgs) > 0 {
		c.mu.Lock()
		if c.polls++; c.polls == 2 {
			msgs = append([]transport.Message{msgs[0]}, msgs...)
		}
		c.mu.Unlock()
	}
	return msgs, err
}

func (c *brokenConsumer) Commit(ctx context.Context, msgs ...transport.Message) error {
	switch c.fault {
	case "commit-does-nothing":
		return nil
	case "commit-offset-not-plus-one":
		in := append([]transport.Message(nil), msgs...)
		for i := range in {
			in[i].Offset--
		}
		return c.Consumer.Commit(ctx, in...)
	case "commit-last-message-only":
		if len(msgs) > 1 {
			msgs = msgs[len(msgs)-1:]
		}
	case "commit-not-owned-succeeds":
		if err := c.Consumer.Commit(ctx, msgs...); !errors.Is(err, transport.ErrNotAssigned) {
			return err
		}
		return nil
	case "commit-not-owned-partially":
		err := c.Consumer.Commit(ctx, msgs...)
		if errors.Is(err, transport.ErrNotAssigned) {
			for _, m := range msgs {
				_ = c.Consumer.Commit(ctx, m)
			}
		}
		return err
	}
	return c.Consumer.Commit(ctx, msgs...)
}

func (c *brokenConsumer) Close() error {
	if c.fault == "on-revoked-called-on-close" && c.onRevoked != nil {
		c.onRevoked([]transport.TopicPartition{{Topic: "closing"}})
	}
	return c.Consumer.Close()
}

// Interface checks.
var (
	_ transport.Transport = (*brokenTransport)(nil)
	_ transport.Tailer    = (*brokenTransport)(nil)
)
