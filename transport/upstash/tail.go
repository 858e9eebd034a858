package upstash

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// tailer is a group-free reader: it keeps its own positions and reads with
// POST /fetch, so it holds no state on the server.
type tailer struct {
	t      *Transport
	topics []string

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	sem    chan struct{} // one Poll at a time; guards pos

	pos map[string][]int64 // topic -> partition -> next offset to read
	// turn counts the polls (guarded by sem): each fetch names a topic's
	// partitions from turn (mod their number) on, so that a capped answer,
	// which the server fills in the order named, leaves out different
	// partitions each time and none waits behind another's backlog.
	turn int

	// pending holds, for a tail of several topics, each topic's fetch in
	// flight (guarded by sem); ready is signalled as one ends; fetches
	// counts their goroutines, waited for by Close.
	pending map[string]*tailFetch
	ready   chan struct{}
	fetches sync.WaitGroup
	fmu     sync.Mutex // orders startFetch and Close

	// onFetch sees each /fetch answer's headers (Transport.sawFetchAnswer),
	// made once.
	onFetch func(*http.Response)

	closeOnce sync.Once
}

// Tail returns a Consumer that reads every partition of topics from the
// latest offsets as of the call, without a consumer group: it learns the
// partition counts (GET /topics) and the end offsets (POST /offsets/latest)
// before returning, so a record produced after Tail returns is delivered by
// its Poll. Partitions added to a topic later are not read.
//
// Poll sends POST /fetch, one request per topic (Upstash answered one topic
// per fetch), concurrently when there are several, each waiting up to the
// poll window; with several, Poll returns once one has records, and the
// others stay in flight, their records coming with a later Poll (cancelled,
// each would close its connection); a topic whose answer comes without
// records is fetched again for the rest of the window. Positions live in the client, so
// retries and abandoned requests lose nothing. Commit is a no-op. Close is idempotent and makes no
// request; after it, Poll, PollCarrying and Commit return errors wrapping
// transport.ErrClosed.
//
// The Consumer implements transport.CarryingPoller: with one topic, on a
// server that has said so in an earlier /fetch answer (the project's REST
// server does in every one), the records to produce go with the fetch, one
// HTTP exchange for both; elsewhere it produces, then polls. An rpc client
// sends its request with the fetch that reads its reply this way. See
// tailer.PollCarrying.
//
// The REST API has no call to create a topic. A topic the server does not
// list is created the way the server creates topics on first use: by a
// short-lived consumer instance of the group "kafkarpc-tail" (POST /consume,
// then POST /delete-consumer). A server without auto-creation refuses it,
// and Tail fails with an error wrapping transport.ErrUnknownTopic.
//
// Tail as a whole is bounded by [WithSetupTimeout] as well as ctx.
func (t *Transport) Tail(ctx context.Context, topics ...string) (transport.Consumer, error) {
	return setup(ctx, t, func(ctx context.Context) (transport.Consumer, error) { return t.tail(ctx, topics) })
}

func (t *Transport) tail(ctx context.Context, topics []string) (transport.Consumer, error) {
	if t.isClosed() {
		return nil, errClosed("tail")
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("upstash: tail: no topics: %w", transport.ErrInvalid)
	}
	var uniq []string
	for _, tp := range topics {
		if tp == "" {
			return nil, fmt.Errorf("upstash: tail: empty topic name: %w", transport.ErrInvalid)
		}
		if !slices.Contains(uniq, tp) {
			uniq = append(uniq, tp)
		}
	}

	counts, err := t.topicCounts(ctx)
	if err != nil {
		return nil, withOp("tail", err)
	}
	var missing []string
	for _, tp := range uniq {
		if _, ok := counts[tp]; !ok {
			missing = append(missing, tp)
		}
	}
	if len(missing) > 0 {
		if err := t.createTopics(ctx, missing); err != nil {
			return nil, withOp("tail", err)
		}
		if counts, err = t.topicCounts(ctx); err != nil {
			return nil, withOp("tail", err)
		}
	}
	pos, err := t.latestPositions(ctx, uniq, counts)
	if err != nil {
		return nil, withOp("tail", err)
	}
	tl := &tailer{t: t, topics: uniq, sem: make(chan struct{}, 1), pos: pos, onFetch: t.sawFetchAnswer}
	tl.ctx, tl.cancel = context.WithCancel(t.ctx)

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		tl.cancel()
		return nil, errClosed("tail")
	}
	t.tails[tl] = struct{}{}
	t.mu.Unlock()
	return tl, nil
}

// Poll returns the records appended since the last Poll (or since Tail),
// waiting up to the poll window or until ctx ends. An empty result with a
// nil error means the window ended without records.
func (tl *tailer) Poll(ctx context.Context) ([]transport.Message, error) {
	if tl.ctx.Err() != nil {
		return nil, errClosed("poll")
	}
	select {
	case tl.sem <- struct{}{}:
		defer func() { <-tl.sem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-tl.ctx.Done():
		return nil, errClosed("poll")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wait := tl.t.pollWait(ctx)
	tl.turn++
	// Stop the fetches on Close as well as on ctx.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(tl.ctx, cancel)
	defer stop()

	var out []transport.Message
	var err error
	if len(tl.topics) == 1 {
		var got []transport.Message
		got, err = tl.fetch(fctx, tl.topics[0], wait)
		out = tl.accept(got)
	} else {
		out, err = tl.fetchAll(ctx, wait)
	}
	switch {
	case tl.ctx.Err() != nil:
		// Closed: positions are moot.
		return nil, errClosed("poll")
	case len(out) > 0:
		return out, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, withOp("tail poll", err)
	}
	return []transport.Message{}, nil
}

// tailFetch is the /fetch of one topic of a tail of several: it runs under
// the tail's lifetime, not a Poll's, and an answer that comes after the Poll
// that started it returned waits for the next Poll.
type tailFetch struct {
	done chan struct{}
	msgs []transport.Message
	err  error
}

// fetchAll fetches every topic concurrently, one request each, and returns
// the records of the answers that came once one has records (or an error),
// or once the window (wait, from now) ended without records, or when ctx
// ends. The fetches still waiting stay in flight, their answers kept for
// the next Poll: a request cancelled while its answer is awaited closes
// its connection, so cancelling them made every Poll with records dial
// anew (TestBreak20TailOfSeveralTopicsKeepsItsConnections). Their
// positions cannot have moved meanwhile: only a topic's own answers move
// them. A topic whose answer (kept from an earlier Poll, or of this one)
// came without records is fetched again for what is left of the window:
// every topic is read for the whole of every Poll
// (TestBreak21TailOfSeveralTopicsFetchesEveryTopicThroughoutAPoll).
// Called with tl.sem held.
func (tl *tailer) fetchAll(ctx context.Context, wait time.Duration) ([]transport.Message, error) {
	if tl.pending == nil {
		tl.pending = make(map[string]*tailFetch, len(tl.topics))
		tl.ready = make(chan struct{}, 1)
	}
	end := time.Now().Add(wait)
	var (
		out  []transport.Message
		errs []error
	)
	for round := 0; ; round++ {
		left := time.Until(end)
		for _, tp := range tl.topics {
			if tl.pending[tp] != nil || (round > 0 && left < minRefetch) {
				continue
			}
			if !tl.startFetch(tp, max(left, 0)) {
				return nil, errClosed("poll")
			}
		}
		for _, tp := range tl.topics {
			f := tl.pending[tp]
			if f == nil || !isDone(f.done) {
				continue
			}
			delete(tl.pending, tp)
			out = append(out, tl.accept(f.msgs)...)
			if f.err != nil && !errors.Is(f.err, context.Canceled) {
				errs = append(errs, f.err)
			}
		}
		if len(out) > 0 || len(errs) > 0 {
			return out, errors.Join(errs...)
		}
		if len(tl.pending) < len(tl.topics) && time.Until(end) >= minRefetch {
			continue // answers without records: fetch those topics again
		}
		if len(tl.pending) == 0 {
			return nil, nil // the window ended without records
		}
		select {
		case <-tl.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tl.ctx.Done():
			return nil, errClosed("poll")
		}
	}
}

// minRefetch is the least of a poll window left for which a Poll of a
// tail of several topics fetches again a topic whose answer came without
// records.
const minRefetch = 20 * time.Millisecond

// startFetch starts the fetch of topic, waiting up to wait, for a tail of
// several topics; false if the tail is closed. Called with tl.sem held.
func (tl *tailer) startFetch(topic string, wait time.Duration) bool {
	f := &tailFetch{done: make(chan struct{})}
	body := tl.fetchBody(topic, wait) // here: tl.turn and the positions are Poll's
	// Under fmu, so that no fetch starts once Close waits for them.
	tl.fmu.Lock()
	defer tl.fmu.Unlock()
	if tl.ctx.Err() != nil {
		return false
	}
	tl.pending[topic] = f
	tl.fetches.Go(func() {
		defer func() {
			close(f.done)
			select {
			case tl.ready <- struct{}{}:
			default:
			}
		}()
		f.msgs, f.err = tl.fetchWith(tl.ctx, body, wait)
	})
	return true
}

// latestPositions asks POST /offsets/latest for the end of every partition
// of topics, whose partition counts are in counts: a tail starts there.
func (t *Transport) latestPositions(ctx context.Context, topics []string, counts map[string]int32) (map[string][]int64, error) {
	var (
		query []restwire.TopicPartitionOffset
		parts []int32 // what query points to
	)
	for _, tp := range topics {
		n, ok := counts[tp]
		if !ok {
			return nil, fmt.Errorf("topic %q: %w", tp, transport.ErrUnknownTopic)
		}
		if n <= 0 {
			return nil, fmt.Errorf("topic %q has %d partitions", tp, n)
		}
		if int(n) > t.cfg.maxPartitions {
			return nil, fmt.Errorf("topic %q: the server claims %d partitions, over the client's limit of %d (WithMaxPartitions)", tp, n, t.cfg.maxPartitions)
		}
		for p := range n {
			parts = append(parts, p)
			query = append(query, restwire.TopicPartitionOffset{Topic: tp})
		}
	}
	for i := range query {
		query[i].Partition = &parts[i]
	}
	body, err := marshal(query)
	if err != nil {
		return nil, err
	}
	var ends []restwire.TopicPartitionOffset
	if err := t.call(ctx, request{method: http.MethodPost, path: "/offsets/latest", body: body, limit: sizedLimit(len(query))}, &ends); err != nil {
		return nil, err
	}
	pos := make(map[string][]int64, len(topics))
	for _, tp := range topics {
		pos[tp] = slices.Repeat([]int64{-1}, int(counts[tp]))
	}
	for _, e := range ends {
		part, off := e.Values()
		if off == math.MaxInt64 {
			return nil, fmt.Errorf("POST /offsets/latest gave offset %d for %s/%d: no record can follow it", off, e.Topic, part)
		}
		if p := pos[e.Topic]; part >= 0 && int(part) < len(p) && off >= 0 {
			p[part] = off
		}
	}
	for tp, p := range pos {
		if i := slices.Index(p, -1); i >= 0 {
			return nil, fmt.Errorf("POST /offsets/latest gave no offset for %s/%d", tp, i)
		}
	}
	return pos, nil
}

// fetch reads one topic's partitions from the current positions.
func (tl *tailer) fetch(ctx context.Context, topic string, wait time.Duration) ([]transport.Message, error) {
	return tl.fetchWith(ctx, tl.fetchBody(topic, wait), wait)
}

// fetchBody is the body of a fetch of topic from the current positions.
// Called with tl.sem held.
func (tl *tailer) fetchBody(topic string, wait time.Duration) []byte {
	pos := tl.pos[topic]
	return restwire.AppendFetchRequestFrom(make([]byte, 0, 48+len(pos)*(48+len(topic))), topic, pos, tl.first(pos), timeoutMs(wait))
}

// fetchWith makes the POST /fetch with body.
func (tl *tailer) fetchWith(ctx context.Context, body []byte, wait time.Duration) ([]transport.Message, error) {
	var ans messagesAnswer
	if err := tl.t.call(ctx, request{method: http.MethodPost, path: "/fetch", url: tl.t.fetchURL, body: body, wait: wait, onResponse: tl.onFetch}, &ans); err != nil {
		return nil, err
	}
	return ans.msgs, nil
}

// first is the partition a fetch of partitions pos names first this poll
// (see turn). Called with tl.sem held.
func (tl *tailer) first(pos []int64) int {
	if len(pos) == 0 {
		return 0
	}
	return tl.turn % len(pos)
}

// accept keeps the records at or past the current positions and moves the
// positions past them; the others (not asked for, or already delivered) are
// dropped and counted in Stats. Called with tl.sem held.
func (tl *tailer) accept(msgs []transport.Message) []transport.Message {
	out := msgs[:0]
	for _, m := range msgs {
		pos := tl.pos[m.Topic]
		if m.Partition < 0 || int(m.Partition) >= len(pos) || m.Offset < pos[m.Partition] || m.Offset == math.MaxInt64 {
			tl.t.dropped.Add(1)
			continue
		}
		pos[m.Partition] = m.Offset + 1
		out = append(out, m)
	}
	return out
}

// Commit is a no-op: a tail has no group to commit to. After Close it
// returns an error wrapping transport.ErrClosed.
func (tl *tailer) Commit(context.Context, ...transport.Message) error {
	if tl.ctx.Err() != nil {
		return errClosed("commit")
	}
	return nil
}

// Close stops the tail; a Poll in progress returns transport.ErrClosed. It
// is idempotent and makes no request.
func (tl *tailer) Close() error {
	tl.closeOnce.Do(func() {
		// Cancelled under fmu, which startFetch holds while it checks
		// tl.ctx and adds to tl.fetches: no fetch starts after this.
		tl.fmu.Lock()
		tl.cancel()
		tl.fmu.Unlock()
		tl.fetches.Wait() // a tail of several topics: fetches left in flight end with tl.ctx
		tl.t.mu.Lock()
		delete(tl.t.tails, tl)
		tl.t.mu.Unlock()
	})
	return nil
}

// MissingTopics implements transport.TopicChecker: it lists the server's
// topics (GET /topics) and, if some of topics are not there, asks the server
// to create them the way Tail does (a short-lived consumer instance
// subscribed to them, which a server that auto-creates topics creates them
// for), then lists again. It produces nothing.
func (t *Transport) MissingTopics(ctx context.Context, topics ...string) ([]string, error) {
	if t.isClosed() {
		return nil, errClosed("missing topics")
	}
	missing := func(counts map[string]int32) []string {
		var out []string
		for _, tp := range topics {
			if _, ok := counts[tp]; !ok && !slices.Contains(out, tp) {
				out = append(out, tp)
			}
		}
		return out
	}
	counts, err := t.topicCounts(ctx)
	if err != nil {
		return nil, withOp("missing topics", err)
	}
	gone := missing(counts)
	if len(gone) == 0 {
		return nil, nil
	}
	if err := t.createTopics(ctx, gone); err != nil && !errors.Is(err, transport.ErrUnknownTopic) {
		return nil, withOp("missing topics", err)
	}
	if counts, err = t.topicCounts(ctx); err != nil {
		return nil, withOp("missing topics", err)
	}
	return missing(counts), nil
}

// TopicExists reports whether topic exists on the server, creating nothing
// (MissingTopics creates what is missing, as a Produce would). It looks in
// the server's topic list (GET /topics), which shows the topics the
// credentials may produce to or consume from, and asks about a topic not
// in it with a fetch of its partition 0 that waits for nothing (POST /fetch
// creates no topic): false for an answer wrapping transport.ErrUnknownTopic
// (404), the refusal for any other (403: the credentials may not read it).
// It is safe for concurrent use.
func (t *Transport) TopicExists(ctx context.Context, topic string) (bool, error) {
	if t.isClosed() {
		return false, errClosed("topic exists")
	}
	counts, err := t.topicCounts(ctx)
	if err != nil {
		return false, withOp("topic exists", err)
	}
	if _, ok := counts[topic]; ok {
		return true, nil
	}
	body, err := json.Marshal(map[string]any{"topic": topic, "partition": 0, "offset": 0, "timeout": 1})
	if err != nil {
		return false, err
	}
	var ignored json.RawMessage
	err = t.call(ctx, request{method: http.MethodPost, path: "/fetch", body: body}, &ignored)
	if errors.Is(err, transport.ErrUnknownTopic) {
		return false, nil
	}
	if err != nil {
		return false, withOp("topic exists", err)
	}
	return true, nil
}

// topicCounts returns every topic's partition count (GET /topics).
func (t *Transport) topicCounts(ctx context.Context) (map[string]int32, error) {
	var counts map[string]int32
	if err := t.call(ctx, request{method: http.MethodGet, path: "/topics", limit: maxTopicsBytes}, &counts); err != nil {
		return nil, err
	}
	return counts, nil
}

// tailCreateGroup is the consumer group of the short-lived instances Tail
// uses to make a server auto-create topics.
const tailCreateGroup = "kafkarpc-tail"

// createTopics makes the server create topics, if it auto-creates them on
// first use, by subscribing a short-lived instance to them and deleting it.
func (t *Transport) createTopics(ctx context.Context, topics []string) error {
	instance := "create-" + uuid.NewString()
	body, err := marshal(restwire.ConsumeRequest{Topics: topics, Timeout: msToTimeout(joinWait)})
	if err != nil {
		return err
	}
	header := http.Header{}
	header.Set("Kafka-Enable-Auto-Commit", "false")
	path := restPath("consume", tailCreateGroup, instance)
	cerr := t.call(ctx, request{method: http.MethodPost, path: path, header: header, body: body, wait: joinWait}, nil)

	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.closeTimeout)
	defer cancel()
	derr := t.call(dctx, request{method: http.MethodPost, path: restPath("delete-consumer", tailCreateGroup, instance)}, nil)
	var he *Error
	if derr != nil && !(errors.As(derr, &he) && he.Status == http.StatusNotFound) {
		t.log.Warn("upstash: tail: deleting the topic-creating consumer instance failed",
			"group", tailCreateGroup, "instance", instance, "error", derr)
	}
	if cerr != nil {
		return fmt.Errorf("creating topics %q: %w", topics, cerr)
	}
	return nil
}
