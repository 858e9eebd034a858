package restserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// handleFetch serves GET|POST /fetch (and /fetch/) with a FetchRequest: a
// single {topic, partition, offset}, a topicPartitionOffsets list, or both
// (the single triple first). A missing partition or offset is 0; an offset
// below the earliest retained one reads from the earliest. Unlike Upstash,
// which answered one topic per call, records of every named partition that
// has data are returned, in request order, up to the fetch record limit per
// partition and within the fetch byte caps ([WithFetchMaxBytes],
// [WithFetchMaxPartitionBytes]). A partition named twice is read once, from
// the lower offset; more partitions than [WithFetchMaxPartitions] is a 400.
// When none has data the call waits up to timeout (default 1000 ms), with
// one waiter for all of them, for the first record on any, else answers [].
//
// The body may carry records to produce first (the "produce" field, see
// carry.go): they are written once the fetch is checked, before anything
// is read, and answered in [ProducedHeader], sent before the fetch waits.
func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request, _ []string) error {
	w.Header()[CarryHeader] = carryValue // the carried-produce extension (carry.go)
	pooled, err := s.readPooledBody(w, r)
	if err != nil {
		return err
	}
	// The fast path's "produce" aliases the pooled body, which is kept
	// until it is decoded; encoding/json's is a copy.
	defer func() {
		if pooled != nil {
			putBuf(pooled)
		}
	}()
	body := *pooled
	if shapeOf(body) == bodyEmpty {
		return badRequest("a fetch request body is required: {topic, partition, offset} and/or topicPartitionOffsets")
	}
	req, ok := restwire.DecodeFetchRequest(body)
	if !ok {
		if err = decodeObject(body, &req, "a fetch request"); err != nil {
			return err
		}
	}
	if present(req.Commit) {
		return badRequest("a fetch cannot carry a commit: it reads without a consumer group (commit with POST /commit or a consume); nothing was written or read")
	}
	if req.Timeout == nil {
		if req.Timeout, err = queryTimeout(r); err != nil {
			return err
		}
	}
	timeout, err := s.cfg.timeoutFor(req.Timeout, defaultConsumeTimeout)
	if err != nil {
		return err
	}
	tpos, err := s.fetchList(&req)
	if err != nil {
		return err
	}
	for _, tpo := range tpos {
		if err := mayConsume(r, tpo.Topic); err != nil {
			return err
		}
	}
	var cr *carry
	if present(req.Produce) {
		// Produced before anything is read: a failed produce fetches
		// nothing, and the fetch sees the records it wrote.
		cr = &carry{s: s, w: w, r: r}
		if err := cr.produce(r, req.Produce, req.Records); err != nil {
			return err
		}
	}
	putBuf(pooled) // decoded: what is kept of it was copied
	pooled = nil
	msgs, err := s.fetch(r, tpos, timeout, cr)
	if err != nil {
		return cr.fail(r, err)
	}
	if cr != nil {
		cr.writeRecords(msgs)
		return nil
	}
	s.writeRecords(w, msgs)
	return nil
}

// fetchList validates the partitions a fetch names, the single triple
// first, and merges repeats: a partition named again keeps its first place
// and the lowest offset. More partitions than the fetch partition cap is a
// 400.
func (s *Server) fetchList(req *restwire.FetchRequest) ([]transport.Offset, error) {
	list := req.TopicPartitionOffsets
	if req.Topic != "" {
		list = append([]restwire.TopicPartitionOffset{{Topic: req.Topic, Partition: req.Partition, Offset: req.Offset}}, list...)
	} else if req.Partition != nil || req.Offset != nil {
		return nil, badRequest("topic is required with partition and offset")
	}
	if len(list) == 0 {
		return nil, badRequest("nothing to fetch: give topic, partition and offset, or topicPartitionOffsets")
	}
	tpos := make([]transport.Offset, 0, min(len(list), s.cfg.fetchMaxParts+1))
	at := make(map[transport.TopicPartition]int, cap(tpos))
	for _, tp := range list {
		if tp.Partition == nil {
			tp.Partition = new(int32)
		}
		if tp.Offset == nil {
			tp.Offset = new(int64)
		}
		if err := validateTopicPartition(&tp, true); err != nil {
			return nil, err
		}
		key := transport.TopicPartition{Topic: tp.Topic, Partition: *tp.Partition}
		if i, ok := at[key]; ok {
			tpos[i].Offset = min(tpos[i].Offset, *tp.Offset)
			continue
		}
		if len(tpos) == s.cfg.fetchMaxParts {
			return nil, badRequest(fmt.Sprintf("a fetch may name at most %d partitions (the fetch partition limit)", s.cfg.fetchMaxParts))
		}
		at[key] = len(tpos)
		tpos = append(tpos, transport.Offset{Topic: tp.Topic, Partition: *tp.Partition, Offset: *tp.Offset})
	}
	return tpos, nil
}

// RecordOverheadBytes is what each record counts for against the fetch
// byte caps on top of its key, value and headers: the JSON framing of its
// topic, partition, offset and timestamp.
const RecordOverheadBytes = 64

// fetchBudget applies the fetch byte caps to an answer being built.
type fetchBudget struct {
	left, partition int
	any             bool // some record is in the answer
}

// take returns the prefix of msgs (one partition's records) that fits.
func (b *fetchBudget) take(msgs []transport.Message) []transport.Message {
	used := 0
	for i := range msgs {
		m := &msgs[i]
		size := RecordOverheadBytes + len(m.Key) + len(m.Value)
		for _, h := range m.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if b.any && (used+size > b.partition || size > b.left) {
			return msgs[:i]
		}
		b.any = true
		used += size
		b.left -= size
	}
	return msgs
}

// fetch reads what tpos have now, within the byte caps; when none has
// anything it waits (one waiter for all of them) up to timeout for a
// record on any, and reads again. cr, when not nil, is the fetch's carried
// produce: its answer is sent before the fetch waits.
func (s *Server) fetch(r *http.Request, tpos []transport.Offset, timeout time.Duration, cr *carry) ([]transport.Message, error) {
	// The reads' own bound; on a backend whose reads never wait (the
	// embedded broker's, as its produce: instantProducer), the request's
	// context as it is: a timer there would bound nothing.
	ctx, cancel := s.produceContext(r)
	defer cancel()
	var waitCtx context.Context // made when first needed: most fetches of a busy topic find records at once
	for {
		out, err := s.fetchNow(ctx, tpos)
		if err != nil || len(out) > 0 {
			return out, err
		}
		cr.flushProduced() // the client learns its records' fate before the wait
		if waitCtx == nil {
			var cancelWait context.CancelFunc
			if s.instant() { // ctx is the request's own: Close must end the wait too
				waitCtx, cancelWait = s.requestContext(r, timeout)
			} else {
				waitCtx, cancelWait = context.WithTimeout(ctx, timeout)
			}
			defer cancelWait()
		}
		if err := s.backend.WaitAny(waitCtx, tpos); err != nil {
			if waitCtx.Err() != nil {
				return nil, nil // timeout, shutdown or the client left: []
			}
			return nil, err
		}
	}
}

// fetchNow reads, without waiting, what each of tpos holds, within the
// byte caps. It moves each offset below its partition's earliest retained
// one up to it.
//
// On a broker that answers over the network, the partitions' offsets are
// looked up several at once first (lookupEach): one after the other, they
// made every fetch of P partitions P round trips long, records or not,
// and a fetch of a few thousand longer than the max timeout.
func (s *Server) fetchNow(ctx context.Context, tpos []transport.Offset) ([]transport.Message, error) {
	budget := fetchBudget{left: s.cfg.fetchMaxBytes, partition: s.cfg.fetchPartBytes}
	var firsts, nexts []int64 // earliest and latest of tpos[i], when looked up first
	if len(tpos) > 1 && !s.instant() {
		tps := make([]transport.TopicPartition, len(tpos))
		for i, t := range tpos {
			tps[i] = transport.TopicPartition{Topic: t.Topic, Partition: t.Partition}
		}
		var err error
		if firsts, nexts, err = s.boundsOf(ctx, tps); err != nil {
			return nil, err
		}
	}
	var out []transport.Message
	for i := range tpos {
		t := &tpos[i]
		var earliest, latest int64
		if firsts != nil {
			earliest, latest = firsts[i], nexts[i]
		} else {
			var err error
			earliest, latest, err = s.backend.Offsets(ctx, transport.TopicPartition{Topic: t.Topic, Partition: t.Partition})
			if err != nil {
				return nil, err
			}
		}
		t.Offset = max(t.Offset, earliest)
		if t.Offset >= latest || (budget.any && budget.left <= 0) {
			continue
		}
		msgs, err := s.backend.Fetch(ctx, *t, s.cfg.fetchMaxRecords)
		if err != nil {
			return nil, err
		}
		taken := budget.take(msgs)
		if len(taken) == 0 {
			continue
		}
		if out == nil {
			// The first partition's records are the answer's so far, not
			// copied; capped, so that appending the next ones copies them
			// rather than writing past them into what the backend returned.
			out = taken[:len(taken):len(taken)]
			continue
		}
		out = append(out, taken...)
	}
	return out, nil
}

// handleTopics serves GET /topics: {"topic": partitions, ...}, only the
// topics the user may produce to or consume from (every topic for an
// admin).
func (s *Server) handleTopics(w http.ResponseWriter, r *http.Request, _ []string) error {
	discardBody(r)
	ctx, cancel := s.requestContext(r, s.cfg.maxTimeout)
	defer cancel()
	topics, err := s.backend.Topics(ctx)
	if err != nil {
		return err
	}
	if topics == nil {
		topics = map[string]int32{}
	}
	for t := range topics {
		if !maySee(r, t) {
			delete(topics, t)
		}
	}
	b, err := json.Marshal(topics)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// handleOffsets serves GET|POST /offsets/{earliest|latest|timestamp} with one
// {topic, partition} or an array of them. A timestamp is epoch ms; one below
// 1e11 is taken as seconds (the SDK tests and the docs' example send
// seconds). For a timestamp the offset is the first whose record time is at
// or after it.
func (s *Server) handleOffsets(w http.ResponseWriter, r *http.Request, seg []string) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	timeout, err := s.metadataTimeout(r)
	if err != nil {
		return err
	}
	var at time.Time
	which := seg[1]
	if which != "earliest" && which != "latest" {
		ts, err := strconv.ParseInt(which, 10, 64)
		if err != nil || ts < 0 {
			return badRequest(fmt.Sprintf("offsets: %q is not earliest, latest or an epoch timestamp", which))
		}
		if ts < 1e11 {
			ts *= 1000
		}
		at = time.UnixMilli(ts)
	}
	tps, err := decodeOneOrMany[restwire.TopicPartitionOffset](body, "a topic partition")
	if err != nil {
		return err
	}
	if len(tps) == 0 {
		return badRequest("name at least one {topic, partition} in the body")
	}
	for _, tp := range tps {
		if err := validateTopicPartition(&tp, false); err != nil {
			return err
		}
		if err := mayConsume(r, tp.Topic); err != nil {
			return err
		}
	}
	ctx, cancel := s.requestContext(r, timeout)
	defer cancel()
	out := make([]transport.Offset, len(tps))
	for i, tp := range tps {
		out[i] = transport.Offset{Topic: tp.Topic, Partition: *tp.Partition}
	}
	if which == "earliest" || which == "latest" {
		parts := make([]transport.TopicPartition, len(tps))
		for i, o := range out {
			parts[i] = transport.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		}
		offs, err := s.offsetsOf(ctx, parts, which == "earliest")
		if err != nil {
			return err
		}
		for i := range out {
			out[i].Offset = offs[i]
		}
	} else {
		err = s.lookupEach(ctx, len(out), func(ctx context.Context, i int) (err error) {
			out[i].Offset, err = s.backend.OffsetForTime(ctx, transport.TopicPartition{Topic: out[i].Topic, Partition: out[i].Partition}, at)
			return err
		})
		if err != nil {
			return err
		}
	}
	writeOffsets(w, out)
	return nil
}
