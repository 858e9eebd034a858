// Package rpctest holds kafkarpc's test kit: the conformance suite every
// transport must pass ([TestTransport]) and helpers for testing code built on
// the rpc layer ([Invoke] runs one call of a handler; [Serve] runs a
// server for a test).
package rpctest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Features says what a transport under test can do, so that [TestTransport]
// skips (with t.Skip and the reason) only the cases the transport declares it
// cannot run; every other case must pass. The zero value declares a
// transport whose auto-created topics have one partition, that keeps no
// liveness rules the suite can check, never calls Subscription.OnRevoked
// and has no record size limit.
type Features struct {
	// Partitions is the partition count of the topics the transport creates
	// on first use. Cases about how keys and group members share partitions
	// need at least 2 and are skipped below that; 2 or more is expected of
	// every real transport. Zero means 1. The suite checks the number: it
	// produces to partition Partitions-1 and expects partition Partitions to
	// be refused with ErrInvalid.
	Partitions int

	// Heartbeat says an open member stays alive by itself: one that does
	// not poll for several times its Subscription.SessionTimeout
	// ([ShortSessionTimeout]), but for less than its MaxPollInterval, keeps
	// its partitions and can commit them. False skips that case.
	Heartbeat bool

	// MaxPollInterval says the transport honours
	// Subscription.MaxPollInterval: a member that does not poll for longer
	// ([ShortMaxPollInterval]) is dropped, its partitions go to the other
	// members from the committed offsets, and its own later Commit fails
	// with ErrNotAssigned. False skips that case.
	MaxPollInterval bool

	// OnRevoked says the transport calls Subscription.OnRevoked with the
	// partitions a rebalance takes from a member. False skips that case.
	OnRevoked bool

	// MaxMessageBytes is the transport's limit on one record. The suite
	// produces a record whose Value alone is MaxMessageBytes+1 bytes and
	// expects ErrMessageTooLarge and nothing appended, and one of
	// MaxMessageBytes/2 bytes and expects it delivered intact. Zero (no
	// limit declared) skips that case.
	MaxMessageBytes int

	// CarryingPoller says the transport's group consumers (Subscribe)
	// implement transport.CarryingPoller; the suite then checks its rules
	// on them. False skips those cases. The same rules are checked on a
	// Tail's consumer whenever it implements the capability, whatever
	// this says.
	CarryingPoller bool
}

// partitions returns f.Partitions, at least 1.
func (f Features) partitions() int {
	return max(f.Partitions, 1)
}

// Timing of the suite. The waits are upper bounds, never sleeps: on the
// embedded broker a case finishes in milliseconds; the bounds leave room for
// a network transport on loopback.
const (
	// CaseTimeout is the per-case watchdog. A case still running after it
	// fails with a goroutine dump, and its transport is closed to unblock
	// it; if the case is still running [CaseTimeout]/2 later, the test
	// binary panics rather than hang.
	CaseTimeout = 10 * time.Second

	// ShortSessionTimeout is the Subscription.SessionTimeout of the member
	// that stops polling in the heartbeat case.
	ShortSessionTimeout = 300 * time.Millisecond

	// ShortMaxPollInterval is the Subscription.MaxPollInterval of the
	// member that stops polling in the max-poll-interval case.
	ShortMaxPollInterval = 300 * time.Millisecond

	// waitTimeout bounds how long a case waits for records it expects, or
	// for a blocked call to return once it should.
	waitTimeout = 5 * time.Second
	// pollSlice is the deadline of each Poll made by the polling helpers.
	// It is short on purpose: cancelling a Poll must never lose records.
	pollSlice = 200 * time.Millisecond
	// quietPeriod is how long the suite polls to check that no further
	// records arrive (duplicates, records that should have been skipped).
	quietPeriod = 150 * time.Millisecond
	// clockSlack is how far a broker-assigned timestamp may be from the
	// local clock around the Produce call.
	clockSlack = 2 * time.Second
)

// TestTransport runs the transport conformance suite: one subtest per rule
// in the doc comments of package transport. Call it from a test of the
// transport's package:
//
//	func TestConformance(t *testing.T) {
//		rpctest.TestTransport(t, func(t testing.TB) transport.Transport {
//			b, err := memory.New(memory.WithPartitions(3))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		}, rpctest.Features{Partitions: 3})
//	}
//
// newTransport is called once per case and must return a fresh transport;
// the suite closes it when the case ends (the constructor may register
// cleanup of its own with t.Cleanup, which runs after that Close). Every case
// uses topics and groups named "rpctest-<case>-<random>-..." that it has not
// used before and that the transport must create on first use, with
// f.Partitions partitions.
//
// The suite polls with short per-Poll deadlines and expects records to arrive
// across any number of Polls, empty Polls included; cancelling a Poll must
// not lose records. Cases run one at a time, each under a watchdog of
// [CaseTimeout].
func TestTransport(t *testing.T, newTransport func(t testing.TB) transport.Transport, f Features) {
	t.Helper()
	if newTransport == nil {
		t.Fatal("rpctest.TestTransport: newTransport is nil")
	}
	if f.Partitions < 0 || f.MaxMessageBytes < 0 {
		t.Fatalf("rpctest.TestTransport: invalid Features %+v: Partitions and MaxMessageBytes must not be negative", f)
	}
	for _, c := range transportCases {
		t.Run(c.name, func(t *testing.T) { c.runOn(t, newTransport, f) })
	}
}

// TransportCase is one rule of the transport conformance suite, which a
// third-party transport can run by itself (see TransportCases).
type TransportCase struct{ c transportCase }

// Name names the case, as in TestTransport's subtests.
func (tc TransportCase) Name() string { return tc.c.name }

// Run runs the case on a transport newTransport makes, as TestTransport
// does: skipped when f lacks what it needs, under the suite's watchdog.
func (tc TransportCase) Run(t *testing.T, newTransport func(t testing.TB) transport.Transport, f Features) {
	tc.c.runOn(t, newTransport, f)
}

// TransportCases returns the cases of the transport conformance suite, in
// the order TestTransport runs them.
func TransportCases() []TransportCase {
	out := make([]TransportCase, len(transportCases))
	for i, c := range transportCases {
		out[i] = TransportCase{c}
	}
	return out
}

func (c transportCase) runOn(t *testing.T, newTransport func(t testing.TB) transport.Transport, f Features) {
	if c.needs != nil {
		if reason := c.needs(f); reason != "" {
			t.Skip(reason)
		}
	}
	tr := newTransport(t)
	if tr == nil {
		t.Fatal("newTransport returned a nil transport")
	}
	t.Cleanup(func() { closeWithin(t, "Transport.Close (suite cleanup)", tr.Close, false) })
	stop := watch(t, tr)
	defer stop()
	c.run(t, newTenv(t, tr, f))
}

// transportCase is one rule of the contract.
type transportCase struct {
	name string
	// needs returns why the case cannot run on a transport with these
	// features, or "" if it can. Nil means it always runs.
	needs func(Features) string
	run   func(t *testing.T, e *tenv)
}

// transportCases lists the suite, one case per rule, in the order of the
// doc comments of package transport.
var transportCases = []transportCase{
	// Produce and Message.
	{name: "ProducePollRoundTrip", run: testProducePollRoundTrip},
	{name: "ProduceOffsetsIncreasePerPartition", run: testProduceOffsetsIncrease},
	{name: "ProduceInvalidIsAllOrNothing", run: testProduceInvalidAllOrNothing},
	{name: "ProduceTooLargeIsAllOrNothing", needs: needsMaxMessageBytes, run: testProduceTooLarge},
	{name: "KeyPicksStablePartition", needs: needsPartitions, run: testKeyStablePartition},
	{name: "KeylessRecordsSpread", needs: needsPartitions, run: testKeylessSpread},
	{name: "ManualPartitionHonoured", run: testManualPartition},

	// Subscribe, Start and groups.
	{name: "SubscribeRejectsInvalid", run: testSubscribeRejectsInvalid},
	{name: "SubscribeManyTopics", run: testSubscribeManyTopics},
	{name: "StartEarliestAndLatest", run: testStartEarliestLatest},
	{name: "GroupSharesPartitions", needs: needsPartitions, run: testGroupSharing},
	{name: "CommitAndResume", run: testCommitAndResume},
	{name: "CommitNotOwned", needs: needsPartitions, run: testCommitNotOwned},
	{name: "RedeliveryAfterClose", needs: needsPartitions, run: testRedeliveryAfterClose},
	{name: "HeartbeatKeepsBusyMember", needs: needsFeature("Heartbeat", func(f Features) bool { return f.Heartbeat }), run: testHeartbeat},
	{name: "RedeliveryAfterMaxPollInterval", needs: needsFeature("MaxPollInterval", func(f Features) bool { return f.MaxPollInterval }), run: testRedeliveryAfterMaxPollInterval},
	{name: "OnRevokedOnRebalance", needs: needsFeature("OnRevoked", func(f Features) bool { return f.OnRevoked }), run: testOnRevoked},
	{name: "FencedByNewInstance", run: testFencing},

	// Poll.
	{name: "LongPollWakesOnProduce", run: testLongPollWakeUp},
	{name: "EmptyPollIsNotEndOfStream", run: testEmptyPoll},
	{name: "PollReturnsContextError", run: testPollContextError},
	{name: "CancelledPollLosesNothing", run: testCancelledPollLosesNothing},

	// CarryingPoller.
	{name: "PollCarryingRoundTrip", needs: needsCarrying, run: onMember(testPollCarryingRoundTrip)},
	{name: "PollCarryingFailedProduceIsAllOrNothing", needs: needsCarrying, run: onMember(testPollCarryingFailedProduce)},
	{name: "PollCarryingEdges", needs: needsCarrying, run: onMember(testPollCarryingEdges)},
	{name: "PollCarryingAcksBeforeRecords", needs: needsCarrying, run: onMember(testPollCarryingAcksFirst)},
	{name: "PollCarryingMixedWithPolls", needs: needsCarrying, run: onMember(testPollCarryingMixedPolls)},
	// The same rules for a Tail's consumer, when it implements the
	// capability (skipped otherwise, whatever Features says).
	{name: "TailPollCarryingRoundTrip", run: onTail(testPollCarryingRoundTrip)},
	{name: "TailPollCarryingFailedProduceIsAllOrNothing", run: onTail(testPollCarryingFailedProduce)},
	{name: "TailPollCarryingEdges", run: onTail(testPollCarryingEdges)},
	{name: "TailPollCarryingAcksBeforeRecords", run: onTail(testPollCarryingAcksFirst)},
	{name: "TailPollCarryingMixedWithPolls", run: onTail(testPollCarryingMixedPolls)},

	// Close.
	{name: "ConsumerClose", run: testConsumerClose},
	{name: "TransportClose", run: testTransportClose},

	// Tailer.
	{name: "TailReadsFromEnd", run: testTail},

	// Everything at once, for the race detector.
	{name: "ConcurrentProducersAndMembers", run: testConcurrent},
}

func needsPartitions(f Features) string {
	if f.partitions() < 2 {
		return fmt.Sprintf("needs Features.Partitions >= 2 (have %d)", f.Partitions)
	}
	return ""
}

// needsFeature returns a needs function for a case about a group rule: it
// wants 2 partitions or more and the feature called name.
func needsFeature(name string, has func(Features) bool) func(Features) string {
	return func(f Features) string {
		if f.partitions() < 2 {
			return fmt.Sprintf("needs Features.Partitions >= 2 (have %d)", f.Partitions)
		}
		if !has(f) {
			return fmt.Sprintf("transport does not declare Features.%s", name)
		}
		return ""
	}
}

func needsMaxMessageBytes(f Features) string {
	if f.MaxMessageBytes <= 0 {
		return "transport declares no record size limit (Features.MaxMessageBytes is 0)"
	}
	return ""
}

// watch starts the watchdog of one case and returns the function that stops
// it, to be deferred by the case. When CaseTimeout passes first, the case
// fails with a dump of every goroutine and tr is closed, which must unblock
// the transport calls the case is stuck in; if it is still running
// CaseTimeout/2 after that, the process panics with a second dump instead of
// hanging until go test's own -timeout.
func watch(t *testing.T, tr transport.Transport) (stop func()) {
	var (
		mu       sync.Mutex
		finished bool
		hard     *time.Timer
	)
	soft := time.AfterFunc(CaseTimeout, func() {
		mu.Lock()
		if finished {
			mu.Unlock()
			return
		}
		t.Errorf("rpctest: case still running after %v; closing the transport to unblock it. Goroutines:\n%s",
			CaseTimeout, goroutines())
		hard = time.AfterFunc(CaseTimeout/2, func() {
			mu.Lock()
			done := finished
			mu.Unlock()
			if !done {
				panic(fmt.Sprintf("rpctest: case %s still running %v after its transport was closed by the watchdog: "+
					"a transport call ignores Close. Goroutines:\n%s", t.Name(), CaseTimeout/2, goroutines()))
			}
		})
		mu.Unlock()
		_ = tr.Close()
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		finished = true
		soft.Stop()
		if hard != nil {
			hard.Stop()
		}
	}
}

// goroutines returns the stacks of all goroutines, for a hang report.
func goroutines() string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 8<<20 {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// closeWithin calls closeFn and fails t if it does not return within
// waitTimeout, or if it returns an error (other than one wrapping ErrClosed
// when closedOK is set). A Close that hangs is left running.
func closeWithin(t testing.TB, what string, closeFn func() error, closedOK bool) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- closeFn() }()
	select {
	case err := <-done:
		if err != nil && !(closedOK && isClosed(err)) {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("%s did not return within %v", what, waitTimeout)
	}
}

// caseSlug turns a subtest name into a topic-safe lower-case word.
func caseSlug(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
