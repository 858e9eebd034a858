package kafkabackend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkarpc/kafkarpc/restserver"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Group-free reads (/fetch) are raw Fetch requests to each partition's
// leader, decoded with kgo.ProcessFetchPartition: no consumer, no buffer,
// nothing that outlives the call.

const (
	// fetchPartitionBytes bounds one partition's records in one Fetch.
	fetchPartitionBytes = 1 << 20
	// longPollSlice bounds one long-poll Fetch of WaitAny; it loops until
	// ctx ends. It is short because every Fetch of the backend's client to
	// a broker goes over one connection (kgo's fetch connection), and a
	// broker (Kafka, kfake) answers a connection's requests one at a time:
	// each waiting /fetch (an idle tailer, say an rpc client's reply
	// reader) held that connection for its whole slice, so a fetch for a
	// record that had arrived queued behind all of them. With 1 s slices
	// and four idle tailers, each rpc call of rpctest's
	// CallRightAfterNewClient took 2-4.6 s (over its 10 s bound under
	// load); with 100 ms the queue is at most a tenth as long, at the cost
	// of an idle wait's ListOffsets and Fetch ten times a second.
	longPollSlice = 100 * time.Millisecond
)

// partResult is what one partition of a Fetch answered.
type partResult struct {
	recs []*kgo.Record
	hwm  int64
	err  error
}

// fetchOnce sends one Fetch per leader broker for parts (at their offsets),
// waiting up to maxWait for minBytes, and returns each partition's answer
// by index of parts. The requests run concurrently and all end before it
// returns.
func (b *Backend) fetchOnce(ctx context.Context, parts []transport.Offset, maxWait time.Duration, partBytes int32) ([]partResult, error) {
	out := make([]partResult, len(parts))
	type slot struct {
		i  int
		id [16]byte
	}
	byLeader := map[int32][]slot{}
	for i, p := range parts {
		e, err := b.meta.entry(ctx, p.Topic, false, false)
		if err != nil {
			return nil, mapErr("fetch", err)
		}
		leader, ok := e.leaders[p.Partition]
		if !ok {
			return nil, fmt.Errorf("kafkabackend: fetch: topic %q has no partition %d: %w", p.Topic, p.Partition, transport.ErrInvalid)
		}
		if leader < 0 {
			b.meta.forget(p.Topic)
			return nil, fmt.Errorf("kafkabackend: fetch: topic %q partition %d has no leader now: %w", p.Topic, p.Partition, restserver.ErrUnavailable)
		}
		byLeader[leader] = append(byLeader[leader], slot{i, e.id})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for leader, slots := range byLeader {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = int32(max(maxWait, 0) / time.Millisecond)
		req.MinBytes = 1
		req.MaxBytes = 50 << 20
		req.SessionEpoch = -1
		topicIdx := map[string]int{}
		for _, s := range slots {
			p := parts[s.i]
			ti, ok := topicIdx[p.Topic]
			if !ok {
				t := kmsg.NewFetchRequestTopic()
				t.Topic = p.Topic
				t.TopicID = s.id
				req.Topics = append(req.Topics, t)
				ti = len(req.Topics) - 1
				topicIdx[p.Topic] = ti
			}
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p.Partition
			rp.FetchOffset = p.Offset
			rp.CurrentLeaderEpoch = -1
			rp.LogStartOffset = -1
			rp.PartitionMaxBytes = partBytes
			req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// RetriableRequest: a long poll canceled by another call kills the
			// shared fetch connection; this one is then sent again.
			kresp, err := b.cl.Broker(int(leader)).RetriableRequest(ctx, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			resp := kresp.(*kmsg.FetchResponse)
			if resp.ErrorCode != 0 {
				if firstErr == nil {
					firstErr = kerr.ErrorForCode(resp.ErrorCode)
				}
				return
			}
			for _, s := range slots {
				p := parts[s.i]
				rp := findPartition(resp, p.Topic, s.id, p.Partition)
				if rp == nil {
					out[s.i].err = fmt.Errorf("no answer for topic %q partition %d: %w", p.Topic, p.Partition, kerr.UnknownServerError)
					continue
				}
				fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
					Offset: p.Offset, Topic: p.Topic, Partition: p.Partition,
				}, rp, kgo.DefaultDecompressor(), nil)
				out[s.i] = partResult{recs: fp.Records, hwm: fp.HighWatermark, err: fp.Err}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func findPartition(resp *kmsg.FetchResponse, topic string, id [16]byte, partition int32) *kmsg.FetchResponseTopicPartition {
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != topic && (t.TopicID == [16]byte{} || t.TopicID != id) {
			continue
		}
		for j := range t.Partitions {
			if t.Partitions[j].Partition == partition {
				return &t.Partitions[j]
			}
		}
	}
	return nil
}

// Fetch returns up to max records of from's partition at or after its
// offset (max <= 0: as many as one Fetch returns), waiting until one exists
// or ctx ends.
func (b *Backend) Fetch(ctx context.Context, from transport.Offset, max int) ([]transport.Message, error) {
	const what = "fetch"
	if err := b.errIfClosed(what); err != nil {
		return nil, err
	}
	tp := transport.TopicPartition{Topic: from.Topic, Partition: from.Partition}
	if err := b.partitionCheck(ctx, what, tp); err != nil {
		return nil, err
	}
	for {
		res, err := b.fetchOnce(ctx, []transport.Offset{from}, 0, fetchPartitionBytes)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, b.fetchErr(tp, err)
		}
		r := res[0]
		if r.err != nil && !errors.Is(r.err, kerr.OffsetOutOfRange) {
			return nil, b.fetchErr(tp, r.err)
		}
		if len(r.recs) > 0 {
			if max > 0 && len(r.recs) > max {
				r.recs = r.recs[:max]
			}
			return toMessages(r.recs), nil
		}
		if errors.Is(r.err, kerr.OffsetOutOfRange) {
			earliest, _, err := b.Offsets(ctx, tp)
			if err != nil {
				return nil, err
			}
			if from.Offset < earliest {
				from.Offset = earliest
				continue
			}
		}
		if err := b.WaitAny(ctx, []transport.Offset{from}); err != nil {
			return nil, err
		}
	}
}

func (b *Backend) fetchErr(tp transport.TopicPartition, err error) error {
	if errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, kerr.UnknownTopicOrPartition) {
		b.meta.forget(tp.Topic)
	}
	return mapErr(fmt.Sprintf("fetch topic %q partition %d", tp.Topic, tp.Partition), err)
}

// WaitAny returns nil once a partition of from has a record at or after its
// offset, or ctx.Err() when ctx ends. Each round lists the end offsets and
// then long-polls one Fetch per leader broker (at most a second) from
// min(offset, end): it starts nothing per partition and nothing outlives it.
func (b *Backend) WaitAny(ctx context.Context, from []transport.Offset) error {
	const what = "wait for records"
	if err := b.errIfClosed(what); err != nil {
		return err
	}
	if len(from) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	for _, o := range from {
		if err := b.partitionCheck(ctx, what, transport.TopicPartition{Topic: o.Topic, Partition: o.Partition}); err != nil {
			return err
		}
	}
	at := make([]transport.Offset, len(from))
	for {
		ends, err := b.listOffsets(ctx, from, -1)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return mapErr(what, err)
		}
		for i, o := range from {
			if ends[i] > o.Offset {
				return nil
			}
			at[i] = o
			at[i].Offset = ends[i]
		}
		wait := longPollSlice
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if wait <= 0 {
			<-ctx.Done() // at its deadline: report ctx's own error
			return ctx.Err()
		}
		res, err := b.fetchOnce(ctx, at, wait, 1)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(mapErr(what, err), restserver.ErrUnavailable) {
				return mapErr(what, err)
			}
			b.meta.forget(at[0].Topic)
		}
		// The Fetch answer carries each partition's high watermark: one past
		// a waited-for offset ends the wait without another ListOffsets.
		for i, r := range res {
			if r.err == nil && (r.hwm > from[i].Offset || len(r.recs) > 0 && r.recs[len(r.recs)-1].Offset >= from[i].Offset) {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// toMessages converts records to transport messages.
func toMessages(recs []*kgo.Record) []transport.Message {
	out := make([]transport.Message, len(recs))
	for i, r := range recs {
		m := &out[i]
		m.Topic, m.Partition, m.Offset = r.Topic, r.Partition, r.Offset
		m.Time = r.Timestamp
		m.Key = string(r.Key)
		m.Value = r.Value
		if len(r.Headers) > 0 {
			m.Headers = make([]transport.Header, len(r.Headers))
			for j, h := range r.Headers {
				m.Headers[j] = transport.Header{Key: h.Key, Value: string(h.Value)}
			}
		}
	}
	return out
}
