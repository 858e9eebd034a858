package restserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
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
// partition. When none has data the call waits up to timeout (default
// 1000 ms) for the first record on any of them, else answers [].
func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request, _ []string) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if shapeOf(body) == bodyEmpty {
		return badRequest("a fetch request body is required: {topic, partition, offset} and/or topicPartitionOffsets")
	}
	var req restwire.FetchRequest
	if err := decodeObject(body, &req, "a fetch request"); err != nil {
		return err
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
	var list []restwire.TopicPartitionOffset
	if req.Topic != "" {
		list = append(list, restwire.TopicPartitionOffset{Topic: req.Topic, Partition: req.Partition, Offset: req.Offset})
	} else if req.Partition != nil || req.Offset != nil {
		return badRequest("topic is required with partition and offset")
	}
	list = append(list, req.TopicPartitionOffsets...)
	if len(list) == 0 {
		return badRequest("nothing to fetch: give topic, partition and offset, or topicPartitionOffsets")
	}
	tpos := make([]transport.Offset, len(list))
	for i, tp := range list {
		if tp.Partition == nil {
			tp.Partition = new(int32)
		}
		if tp.Offset == nil {
			tp.Offset = new(int64)
		}
		if err := validateTopicPartition(&tp, true); err != nil {
			return err
		}
		tpos[i] = transport.Offset{Topic: tp.Topic, Partition: *tp.Partition, Offset: *tp.Offset}
	}
	msgs, err := s.fetch(r, tpos, timeout)
	if err != nil {
		return err
	}
	s.writeRecords(w, msgs)
	return nil
}

func (s *Server) fetch(r *http.Request, tpos []transport.Offset, timeout time.Duration) ([]transport.Message, error) {
	ctx, cancel := s.requestContext(r, s.cfg.maxTimeout)
	defer cancel()
	results := make([][]transport.Message, len(tpos))
	ready := false
	// First pass: read what is there now, without waiting.
	for i := range tpos {
		t := &tpos[i]
		earliest, latest, err := s.backend.Offsets(ctx, transport.TopicPartition{Topic: t.Topic, Partition: t.Partition})
		if err != nil {
			return nil, err
		}
		t.Offset = max(t.Offset, earliest)
		if t.Offset < latest {
			if results[i], err = s.backend.Fetch(ctx, *t, s.cfg.fetchMaxRecords); err != nil {
				return nil, err
			}
			ready = ready || len(results[i]) > 0
		}
	}
	if !ready {
		if err := s.waitFetch(r, tpos, results, timeout); err != nil {
			return nil, err
		}
	}
	var out []transport.Message
	for _, res := range results {
		out = append(out, res...)
	}
	return out, nil
}

// waitFetch waits on every partition at once until the first has data (the
// others' fetches are then canceled, keeping what they already got) or
// timeout passes.
func (s *Server) waitFetch(r *http.Request, tpos []transport.Offset, results [][]transport.Message, timeout time.Duration) error {
	ctx, cancel := s.requestContext(r, timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(tpos))
	for i, t := range tpos {
		wg.Go(func() {
			msgs, err := s.backend.Fetch(ctx, t, s.cfg.fetchMaxRecords)
			switch {
			case len(msgs) > 0:
				results[i] = msgs
				cancel()
			case err != nil && ctx.Err() == nil:
				errs[i] = err
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// handleTopics serves GET /topics: {"topic": partitions, ...}.
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
	ctx, cancel := s.requestContext(r, timeout)
	defer cancel()
	out := make([]transport.Offset, len(tps))
	for i, tp := range tps {
		if err := validateTopicPartition(&tp, false); err != nil {
			return err
		}
		off, err := s.offsetOf(ctx, which, at, tp.Topic, *tp.Partition)
		if err != nil {
			return err
		}
		out[i] = transport.Offset{Topic: tp.Topic, Partition: *tp.Partition, Offset: off}
	}
	writeOffsets(w, out)
	return nil
}

func (s *Server) offsetOf(ctx context.Context, which string, at time.Time, topic string, p int32) (int64, error) {
	switch which {
	case "earliest", "latest":
		earliest, latest, err := s.backend.Offsets(ctx, transport.TopicPartition{Topic: topic, Partition: p})
		if which == "earliest" {
			return earliest, err
		}
		return latest, err
	}
	return s.backend.OffsetForTime(ctx, transport.TopicPartition{Topic: topic, Partition: p}, at)
}
