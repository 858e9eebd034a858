package rpc

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// serveRun is the state of one Serve call: the poll loop hands records to
// workers, each worker runs a record through the pipeline (pipeline.go), and
// the committer commits the watermarks the tracker computes (commit.go).
type serveRun struct {
	s    *Server
	cons transport.Consumer

	dedup   *dedupWindow
	reader  *dedupReader  // nil when the window is not persisted
	work    []chan ticket // one shared, or one per worker with key ordering
	workers sync.WaitGroup
	seed    maphash.Seed // spreads keys over workers with key ordering

	// handlerCtx is the handlers' parent context. It outlives the Serve
	// ctx by the drain timeout: hardCancel ends it (a hard stop).
	handlerCtx context.Context
	hardCancel context.CancelFunc
	// finalCtx bounds the produces of the settle stage. It ends
	// finalGrace after a hard stop, so that a transport whose Produce
	// hangs cannot hold Serve forever.
	finalCtx    context.Context
	finalCancel context.CancelFunc

	stopping atomic.Bool
	// endPoll ends the poll loop's context, and fenced holds the error of
	// a commit answered transport.ErrFenced, which the poll loop returns:
	// a transport whose Poll goes on working after such a commit would
	// otherwise keep the loop polling records that no worker starts
	// (stopping is set), and Serve would neither return nor leave the
	// group for the member that replaced it.
	endPoll context.CancelFunc
	fenced  atomic.Pointer[error]

	// carry sends the workers' replies with the next poll; nil when the
	// consumer cannot (see carrier).
	carry *carrier

	// handOver says the poll loop may hand itself over to an idle worker
	// and run the last record of a batch itself (see pollLoop): without
	// key ordering (any worker may run any record; with key ordering a
	// key's records go to one worker's queue, in order) and without a
	// carrier (whose window is the loop's own).
	handOver bool
	// inFlight counts the records given to workers and not yet done with
	// (queued or running), and the one the loop keeps when it hands
	// itself over. It is only ever more than the truth (a worker counts
	// its record down after running it): what pollLoop bounds by it.
	inFlight atomic.Int64
	// pollEnd receives the poll loop's end (its error), from whichever
	// goroutine ran it last.
	pollEnd chan error
	// polls is the consumer the poll loop polls: cons, or (without a
	// carrier) cons polling into one buffer reused from one poll to the
	// next (the loop copies each record into its ticket). It is used by
	// the goroutine that runs the poll loop.
	polls transport.Consumer
	// batchTks holds the tickets of the batch being dispatched, reused
	// from one batch to the next by the goroutine that runs the poll loop.
	batchTks []ticket

	track     *tracker
	commitSig chan struct{}
	// commitPaced is set while the committer waits for the commit
	// interval's end (see committer).
	commitPaced atomic.Bool
	// commitNow ends the committer's wait for the interval's end early:
	// the records handled and not committed (track.pending), alone or with
	// the other instances' markers read since the last commit (see
	// othersHandled), reached commitEvery (half the dedup window's size; 0
	// without a window). Left
	// uncommitted longer, records handled before a crash or a rebalance
	// would no longer all be in the window that is to answer their
	// redelivery (see committer).
	commitNow   chan struct{}
	commitEvery int64
	// learnedAtCommit is the dedup window's learned count when the last
	// commit made (one that committed something) read the watermarks (see
	// othersHandled and commit).
	learnedAtCommit atomic.Int64
	// committed is closed (and replaced) each time commit reads the
	// watermarks: a worker that handled a whole dedup window's size since
	// the last commit waits on it (awaitCommit).
	commitMu  sync.Mutex
	committed chan struct{}
	commitWG  sync.WaitGroup
	// markBuf and commitBuf are commit's buffers, reused from one commit
	// to the next (commits never overlap).
	markBuf   []mark
	commitBuf []transport.Message
}

// heldCheck is how often a serving run looks for records still running
// that hold back the commit of records handled after them, and heldReport
// how long one must hold them before it is logged (once per record). Vars,
// so that tests can shorten them.
var (
	heldCheck  = 10 * time.Second
	heldReport = time.Minute
)

// watchHeld logs each record still running that has held back the commit
// of records handled after it for heldReport: a long handler, or one that
// hangs. Those records are delivered again if the server stops or loses
// the partition before it ends. It is logged again, as a warning, if the
// records it holds back reach the dedup window's size: a crash would then
// run the oldest of them again.
func (r *serveRun) watchHeld(stop context.Context) {
	defer r.commitWG.Done()
	t := time.NewTicker(heldCheck)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case now := <-t.C:
			for _, h := range r.track.holding(now, heldReport, 2*r.commitEvery) {
				level := slog.LevelInfo
				if h.beyond {
					level = slog.LevelWarn
				}
				r.s.log.Log(context.Background(), level,
					"rpc: a request still running holds back the commit of the requests handled after it; they are delivered again if the server stops or loses the partition before it ends",
					"topic", h.tp.Topic, "partition", h.tp.Partition, "offset", h.offset,
					"held_for_at_least", h.held, "held_back", h.waiting)
			}
		}
	}
}

// finalGrace is how long Serve waits, after a hard stop, for the settle
// stage's produces before it cancels them.
const finalGrace = 5 * time.Second

func newServeRun(s *Server, cons transport.Consumer, track *tracker, reader *dedupReader) *serveRun {
	hctx, hcancel := context.WithCancel(context.Background())
	fctx, fcancel := context.WithCancel(context.Background())
	var work []chan ticket
	if s.cfg.keyOrdering {
		for range s.cfg.concurrency {
			work = append(work, make(chan ticket, 64))
		}
	} else {
		work = []chan ticket{make(chan ticket, s.cfg.concurrency)}
	}
	r := &serveRun{
		s:           s,
		cons:        cons,
		dedup:       s.dedup,
		reader:      reader,
		work:        work,
		seed:        maphash.MakeSeed(),
		handlerCtx:  hctx,
		hardCancel:  hcancel,
		finalCtx:    fctx,
		finalCancel: fcancel,
		track:       track,
		commitSig:   make(chan struct{}, 1),
		commitNow:   make(chan struct{}, 1),
		committed:   make(chan struct{}),
		commitEvery: commitEvery(s.dedup),
		carry:       newCarrier(cons),
		pollEnd:     make(chan error, 1),
	}
	r.handOver = r.carry == nil && !s.cfg.keyOrdering
	r.polls = cons
	if r.carry == nil {
		r.polls = newReusingConsumer(cons)
	}
	return r
}

// commitEvery is how many handled records make the committer commit
// before the interval's end: half the dedup window's size, so that what a
// crash leaves uncommitted is still in the window of the next owner. 0
// (no bound) without a window.
func commitEvery(w *dedupWindow) int64 {
	if w == nil || w.size <= 0 {
		return 0
	}
	return int64(max(w.size/2, 1))
}

// serve runs the workers, the committer and the poll loop until ctx ends,
// then drains: no more work is started; in-flight handlers get the drain
// timeout, then their contexts are canceled (a hard stop); what was handled
// is committed and the group left.
//
// The poll loop runs in one of concurrency+1 goroutines, the others being
// the workers; with handOver it moves from one to another (see pollLoop),
// and at most concurrency of them run a record at any time.
func (r *serveRun) serve(ctx context.Context) error {
	ctx, r.endPoll = context.WithCancel(ctx) // before the committer starts: a fenced commit ends it
	defer r.endPoll()
	for i := range r.s.cfg.concurrency {
		r.workers.Add(1)
		go r.worker(ctx, r.work[i%len(r.work)], false)
	}
	commitCtx, stopCommitter := context.WithCancel(context.Background())
	defer stopCommitter()
	if r.reader != nil && r.commitEvery > 0 {
		r.learnedAtCommit.Store(r.dedup.learned.Load())
		f := r.othersHandled
		r.reader.learned.Store(&f)
		defer r.reader.learned.Store(nil)
	}
	r.commitWG.Add(2)
	go r.committer(commitCtx)
	go r.watchHeld(commitCtx)
	r.s.run.Store(r)
	defer r.s.run.CompareAndSwap(r, nil)
	r.workers.Add(1)
	go r.worker(ctx, r.work[0], true) // polls first; then a worker like the others

	pollErr := <-r.pollEnd // stopping is set
	// Workers held by awaitCommit start nothing more: let them go now, not
	// at their next re-check.
	close(r.nextCommitted())
	for _, w := range r.work {
		close(w)
	}
	r.drain()

	stopCommitter()
	r.commitWG.Wait()
	r.finalCommit()
	if err := r.cons.Close(); err != nil && !isClosed(err) {
		r.s.log.Warn("rpc: leaving group failed", "err", err)
	}
	return pollErr
}

// drain waits for the workers: up to the drain timeout, then after a hard
// stop up to finalGrace, then after canceling the settle stage's produces
// up to a second more; then it gives up on them.
func (r *serveRun) drain() {
	drained := make(chan struct{})
	go func() { r.workers.Wait(); close(drained) }()
	defer r.finalCancel()
	defer r.hardCancel()
	if waitFor(drained, r.s.cfg.drain) {
		return
	}
	r.s.log.Warn("rpc: drain timeout reached; canceling in-flight handlers", "timeout", r.s.cfg.drain)
	r.hardCancel()
	if waitFor(drained, finalGrace) {
		return
	}
	r.finalCancel()
	if waitFor(drained, time.Second) {
		r.s.log.Error("rpc: replies still being produced after the hard stop were canceled; their requests will be redelivered", "grace", finalGrace)
		return
	}
	// A handler that ignores its context cannot be stopped: it is
	// abandoned, so that Serve returns, leaves the group and lets the
	// request go to another member. Its goroutine ends when it returns;
	// nothing it does after that is committed.
	r.s.log.Error("rpc: handlers ignore their canceled context; abandoning them (their requests will be redelivered)", "drain", r.s.cfg.drain, "grace", finalGrace)
	if r.dedup != nil {
		r.dedup.abandon(r)
	}
}

// waitFor waits until ch is closed or d passes, reporting which.
func waitFor(ch <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// pollLoop polls and gives the records to the workers until ctx ends or
// the consumer fails for good (it then returns handed false and the error),
// or until it hands itself over (handed true).
//
// With handOver, the batch's last record is not queued when a worker is
// free to take the loop over: the loop queues a takeover ticket instead,
// stops, and its goroutine runs the record (kept) at once, while the
// worker that takes the ticket polls on. A lone record then goes from the
// poll to its handler in the goroutine that polled it, without waiting for
// a worker to wake. The records in flight (inFlight, the kept one included)
// never exceed the concurrency, so that a worker is free to take the
// ticket (FIFO, after what is queued before it) and no more than
// concurrency records run while nobody polls.
func (r *serveRun) pollLoop(ctx context.Context) (kept ticket, handed bool, err error) {
	cons := r.polls
	if r.carry != nil {
		cons = carryingConsumer{Consumer: r.cons, c: r.carry}
		defer r.carry.close() // hand-ins after the loop: workers produce on their own
	}
	err = pollRetrying(ctx, cons, r.s.log, "request", func(msgs []transport.Message) bool {
		defer r.carry.openWindow() // if released below
		polled := r.track.polled()
		// The whole batch is tracked before any of it is dispatched: a
		// transport may return a partition's records out of order (rpctest's
		// PollReorder), and a record dispatched and done before a lower
		// offset of its batch was tracked would move the watermark past
		// that offset, which then ran untracked and was committed while it
		// ran (TestBreak8ReorderedBatchNeverCommitsPastALowerOffset).
		tks := r.batchTks[:0]
		for i := range msgs {
			tk, ok := r.track.add(&msgs[i], polled)
			if !ok {
				continue // revoked, or its first delivery is still being handled
			}
			tks = append(tks, tk)
		}
		// tks is cleared (it keeps no record alive until the next batch)
		// wherever this function returns, and before the loop is handed
		// over: the next poller reuses it.
		r.batchTks = tks
		for i := range tks {
			// The workers may be busy: a partition revoked while this
			// batch waits is not dispatched any more (run checks).
			tk := tks[i]
			if tk.first && r.reader != nil {
				r.carry.release() // the catch-up may take a while: no worker waits on it
			}
			if tk.first && r.reader != nil && !r.reader.sync(ctx) && ctx.Err() == nil {
				// A partition came to this server: another instance may
				// have handled some of its records without committing them.
				r.s.log.Warn("rpc: the dedup topic could not be read up to now; requests handled by another instance may run again")
			}
			work := r.queueFor(tk.m.Key)
			if r.handOver && i == len(tks)-1 && r.inFlight.Load() < int64(r.s.cfg.concurrency) {
				clear(tks) // tk, the last, is a copy: the rest were sent
				// The kept record is counted before the takeover can be
				// taken: the next poller reads inFlight at once, and with
				// the record not counted yet it would hand over too, and
				// concurrency+1 records run
				// (TestBreak8HandOverCountsTheKeptRecordBeforeTheTakeover).
				r.inFlight.Add(1)
				select {
				case work <- ticket{takeover: true}:
					kept, handed = tk, true
					return false
				default: // the queue is full: queued below
					r.inFlight.Add(-1)
				}
			}
			r.inFlight.Add(1)
			select { // the common case: no select on ctx
			case work <- tk:
				r.carry.sent()
				continue
			default:
			}
			// The workers are busy: none may wait on this loop while it
			// waits on them.
			r.carry.release()
			select {
			case work <- tk:
				r.carry.sent()
			case <-ctx.Done():
				r.inFlight.Add(-1)
				clear(tks)
				return false // the rest stay uncommitted: redelivered later
			}
		}
		clear(tks)
		return true
	})
	if handed {
		return kept, true, nil
	}
	if fe := r.fenced.Load(); fe != nil && err == nil {
		err = *fe // a commit said fenced and ended the loop's context
	}
	if err != nil {
		return ticket{}, false, fmt.Errorf("rpc: Serve: %w", err)
	}
	return ticket{}, false, nil
}

// worker runs the tickets of work until it is closed; poll says it runs
// the poll loop first. A takeover ticket (see pollLoop) makes it run the
// poll loop; when the loop ends, it tells serve (pollEnd) and goes back to
// work.
func (r *serveRun) worker(ctx context.Context, work <-chan ticket, poll bool) {
	defer r.workers.Done()
	batch := new([2]transport.Message) // sendReply's, for every delivery of this worker
	if poll {
		r.pollTurn(ctx, &batch)
		if !r.handOver {
			return // the poll loop's own goroutine: it ended
		}
	}
	for tk := range work {
		if tk.takeover {
			r.pollTurn(ctx, &batch)
			continue
		}
		r.runTicket(&tk, &batch)
	}
}

// pollTurn runs the poll loop; if the loop hands itself over, it runs the
// record the loop kept. When the loop ends, it sets stopping before it
// tells serve: this goroutine then goes back to the queue as one worker
// too many, and must start nothing there.
func (r *serveRun) pollTurn(ctx context.Context, batch **[2]transport.Message) {
	kept, handed, err := r.pollLoop(ctx)
	if !handed {
		r.stopping.Store(true) // in-flight handlers finish; queued records wait for the next owner
		r.pollEnd <- err
		return
	}
	r.runTicket(&kept, batch)
}

// runTicket is a worker's run of tk with its batch, which it replaces
// when the transport may still read it.
func (r *serveRun) runTicket(tk *ticket, batch **[2]transport.Message) {
	r.run(tk, *batch)
	if (*batch)[0].Topic != "" {
		// sendReply's produce failed and the transport may still read
		// the batch (see sendReply): it is left to it.
		*batch = new([2]transport.Message)
	}
	r.carry.done()
	r.inFlight.Add(-1)
}

// run is a worker's handling of one ticket; batch is the worker's (see
// delivery.batch).
func (r *serveRun) run(tk *ticket, batch *[2]transport.Message) {
	if r.stopping.Load() {
		return // not started before the stop: left uncommitted, redelivered later
	}
	if !r.track.current(tk) {
		return // its partition was revoked: the next owner runs it
	}
	if !r.handle(tk, batch) {
		return // stays in flight: not committed, redelivered later
	}
	r.s.handled.Add(1)
	if r.track.complete(tk) {
		r.signalCommit()
	}
	if r.commitEvery > 0 && r.track.pending.Load() >= 2*r.commitEvery {
		r.awaitCommit(tk)
	}
}

// queueFor is the work queue of a record with key: the one queue, or with
// key ordering the queue of its key's worker.
func (r *serveRun) queueFor(key string) chan ticket {
	if len(r.work) == 1 {
		return r.work[0]
	}
	return r.work[maphash.String(r.seed, key)%uint64(len(r.work))]
}

// holdGrace is how long awaitCommit waits for a partition's lowest live
// record to end when records done above it make up the hold: one still
// running after that is a long handler, and holds nobody.
const holdGrace = time.Second

// awaitCommit holds a worker back while a whole dedup window's size of
// records is handled and not committed (track.pending) and a commit could
// commit some of it: it asks the committer to commit now and waits until a
// commit is over and the count is below that size again. The early commit
// that commitNow asks for is asynchronous: a burst on a starved machine
// could otherwise leave more handled records uncommitted than the window
// holds, and a crash would then run the oldest of them again. Only a
// commit that is made lowers the count, so the workers stay held while
// commits fail or hang: what a crash would run again stays within the
// window.
//
// Records handled above one that still runs are not committable (the
// watermark cannot pass it) and hold the worker up to holdGrace, until
// that record ends and the watermark passes them (a commit then ends the
// wait): a record that is merely slower than its neighbours, or still
// running when the worker checks, must not let the workers handle on
// while commits fail (TestBreak11FailingCommitsHoldWithTwoWorkers). One
// still running after holdGrace is a long handler: it holds nobody from
// then on (tracker.headsWaited), else it would stop the whole server
// (TestLongHandlerHoldsNobody). The wait ends when the run stops (nothing
// more is started then). With key ordering, a worker whose own queue
// holds records does not wait for a lowest record to end: it may be one of
// them.
func (r *serveRun) awaitCommit(tk *ticket) {
	var (
		t     *time.Timer
		start time.Time // the first wait with nothing committable
	)
	for r.track.pending.Load() >= 2*r.commitEvery && !r.stopping.Load() {
		committable, blocked := r.track.holdState()
		wait := time.Second // re-checked at least each second
		switch {
		case committable:
			start = time.Time{}
		case !blocked:
			return // only long handlers hold the watermark: nothing to wait for
		case len(r.work) > 1 && len(r.queueFor(tk.m.Key)) > 0:
			return // the lowest record may wait in this worker's own queue
		case start.IsZero():
			start = time.Now()
			wait = holdGrace
		default:
			if wait = holdGrace - time.Since(start); wait <= 0 {
				r.track.headsWaited()
				start = time.Time{}
				continue
			}
		}
		r.commitMu.Lock()
		ch := r.committed // closed when the next commit to start is over
		r.commitMu.Unlock()
		if committable {
			select {
			case r.commitNow <- struct{}{}:
			default:
			}
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-ch:
		case <-t.C:
		}
	}
}

// othersHandled is called by the dedup reader after it read markers: the
// window is the group's, and other instances' markers push this server's
// entries out of it as its own do. When the records this server handled
// and did not commit and the markers learned since its last commit make
// commitEvery, it commits now, so that what a crash leaves uncommitted is
// still in the window of the next owner
// (TestBreak19GroupFillsTheWindowOfAServer).
func (r *serveRun) othersHandled() {
	pending := r.track.pending.Load()
	if pending > 0 && pending+r.dedup.learned.Load()-r.learnedAtCommit.Load() >= r.commitEvery {
		select {
		case r.commitNow <- struct{}{}:
		default:
		}
	}
}

// signalCommit wakes the committer: a watermark moved. While the
// committer waits for the commit interval's end, it need not be woken:
// that commit reads every watermark.
func (r *serveRun) signalCommit() {
	if r.commitPaced.Load() {
		if r.commitEvery > 0 && r.track.pending.Load() >= r.commitEvery {
			select { // too many handled to wait for the interval's end
			case r.commitNow <- struct{}{}:
			default:
			}
		}
		return
	}
	select {
	case r.commitSig <- struct{}{}:
	default:
	}
}
