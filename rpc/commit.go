package rpc

import (
	"context"
	"errors"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// commitTimeout bounds one commit call.
const commitTimeout = 10 * time.Second

// finalCommitTime bounds the retries of the commit at the end of Serve.
const finalCommitTime = 5 * time.Second

// committer commits the tracker's watermarks each time a worker moves one,
// at most once per WithCommitInterval (watermarks that move sooner wait
// for the interval to pass and are committed together), and retries with
// commitBackoff while a commit fails, until stop ends. A commit in flight
// then is cut short: finalCommit commits after it, within its own bound.
func (r *serveRun) committer(stop context.Context) {
	defer r.commitWG.Done()
	bo := commitBackoff.newBackOff()
	interval := r.s.cfg.commitInterval
	if r.dedup != nil && interval > r.dedup.age/2 {
		// Records handled and not committed must still be in the dedup
		// window when a crash or a rebalance delivers them again: within
		// its age, as within its size (see commitEvery).
		interval = r.dedup.age / 2
	}
	var (
		again <-chan time.Time // a failed commit's retry
		paced <-chan time.Time // the interval's end, when a commit waits for it
		last  time.Time        // the last commit's start
	)
	for {
		select {
		case <-r.commitSig:
			if interval > 0 {
				if paced != nil {
					continue // the commit at the interval's end takes this mark too
				}
				if wait := interval - time.Since(last); wait > 0 {
					paced = time.After(wait)
					r.commitPaced.Store(true) // workers need not wake the committer meanwhile
					continue
				}
			}
		case <-paced:
			// Cleared before commit reads the watermarks: a mark that
			// moves after this is signalled again, one that moved before
			// is in this commit.
			r.commitPaced.Store(false)
			paced = nil
		case <-r.commitNow:
			// Half the dedup window's size handled within the interval:
			// commit now (see commitEvery). Not while a failed commit
			// waits for its retry: that retry commits it, and workers
			// held by awaitCommit would else retry a failing commit
			// back to back, without the backoff.
			if again != nil {
				continue
			}
			r.commitPaced.Store(false)
			paced = nil
		case <-again:
			again = nil // fired: the next failure arms a new one
		case <-stop.Done():
			return
		}
		if interval > 0 {
			last = time.Now()
		}
		if r.commit(stop) {
			bo.Reset()
			again = nil
		} else if again == nil {
			again = time.After(bo.NextBackOff())
		}
	}
}

// finalCommit commits what the run handled, retrying for a short while:
// everything handled and not committed is run again by the next owner.
func (r *serveRun) finalCommit() {
	ctx, cancel := context.WithTimeout(context.Background(), finalCommitTime)
	defer cancel()
	bo := commitBackoff.newBackOff()
	for !r.commit(ctx) {
		if !sleepCtx(ctx, bo.NextBackOff()) {
			r.s.log.Warn("rpc: final commit failed; handled records after the last commit will be redelivered")
			return
		}
	}
}

// commit commits every watermark that moved past its last commit, each
// call within commitTimeout and while parent lasts. It reports false when
// a commit failed for a reason other than the partition having moved to
// another member: the watermarks stay uncommitted, for the next try.
func (r *serveRun) commit(parent context.Context) (made bool) {
	// The committer and finalCommit, one after the other, are the only
	// callers: the buffers are reused.
	done := r.nextCommitted()
	// The workers held back by awaitCommit go on once this commit is over
	// (made or failed), not as it starts: what they handled is committed
	// by then, unless the commit failed. Released at its start, a worker
	// could handle more than the dedup window holds while a commit slowed
	// down under load was still in flight, and a crash then ran them all
	// again (TestBreak5CommitIntervalOutrunsDedupWindow, about 1 run in 30
	// under the -race suite's load).
	defer close(done)
	// The other instances' markers count from the last commit made (see
	// othersHandled), read before the watermarks: one learned while they
	// are read counts towards the next. A call that commits nothing (the
	// records handled wait behind one still running) or fails does not
	// start the count again: the records it left were handled before it,
	// and the markers learned meanwhile pushed them out of the window too
	// (TestBreak19GroupMarkersCountFromTheLastCommitMade).
	learned := r.dedup.learnedCount()
	marks := r.track.uncommittedInto(r.markBuf)
	r.markBuf = marks
	if len(marks) == 0 {
		return true
	}
	defer func() {
		if made {
			r.learnedAtCommit.Store(learned)
		}
	}()
	// A lazy context: a transport that commits without waiting on ctx (the
	// embedded broker) costs no timer per commit.
	ctx := &lazyCtx{parent: parent, deadline: time.Now().Add(commitTimeout)}
	defer ctx.release()
	if len(marks) > 1 {
		msgs := r.commitBuf[:0]
		for i := range marks {
			msgs = append(msgs, marks[i].m)
		}
		r.commitBuf = msgs
		if r.cons.Commit(ctx, msgs...) == nil {
			for i := range marks {
				r.track.committed(&marks[i])
			}
			return true
		}
		// One partition rebalanced away fails the whole commit: commit
		// them one by one, so the others' progress is kept.
	}
	ok := true
	for i := range marks {
		err := r.cons.Commit(ctx, marks[i].m)
		switch {
		case err == nil:
			r.track.committed(&marks[i])
		case errors.Is(err, transport.ErrFenced):
			// Another member took this one's place: the records polled
			// and not started yet are its now (it reads them from the
			// committed offset). None is started here any more, though
			// the poll loop learns of it only at its next poll, which
			// may wait until the workers took the rest of its batch. The
			// poll loop is ended too (its error is this one): a transport
			// whose Poll still works would else keep it polling records
			// that nobody starts, and Serve would never return.
			r.stopping.Store(true)
			r.fenced.CompareAndSwap(nil, &err)
			r.endPoll()
			return true
		case errors.Is(err, transport.ErrNotAssigned):
			// Rebalanced away (the new owner redelivers what was not
			// committed), or away and back: this mark is given up.
			r.track.refused(&marks[i])
			r.s.log.Debug("rpc: partition moved to another member before its commit", "topic", marks[i].m.Topic, "partition", marks[i].m.Partition)
		case isClosed(err):
			return true // nothing more can be committed by this member
		case parent.Err() != nil:
			// Cut short by the stop (the committer's) or by the final
			// commit's bound: not a failure to warn of. The stop's final
			// commit takes these marks; one that runs out of time warns
			// by itself.
			r.s.log.Debug("rpc: commit cut short by the stop", "topic", marks[i].m.Topic, "partition", marks[i].m.Partition, "err", err)
			return false
		default:
			ok = false
			r.s.log.Warn("rpc: commit failed; will retry", "topic", marks[i].m.Topic, "partition", marks[i].m.Partition, "err", err)
		}
	}
	return ok
}

// nextCommitted replaces the channel that workers held by awaitCommit wait
// on and returns the old one, for its taker to close: when a commit is
// over, or when the run stops (they start nothing more then).
func (r *serveRun) nextCommitted() chan struct{} {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	ch := r.committed
	r.committed = make(chan struct{})
	return ch
}

func isClosed(err error) bool { return errors.Is(err, transport.ErrClosed) }
