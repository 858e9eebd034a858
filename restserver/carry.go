package restserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// The carried produce and commit, an extension of POST
// /consume/{group}/{instance} (see doc.go): the consume body may hold a
// "produce" array of records in the shape of POST /produce's body, and a
// "commit" of offsets in the shape of POST /commit's. The records are
// produced first, through the same checks as /produce; the offsets are
// committed once the instance is joined, as /commit with
// Kafka-Commit-Fenced: true; both answers go in response headers
// (Kafka-Produced, Kafka-Committed), sent at once, before the long poll;
// the records polled follow as the body. Upstash SDKs never send the
// fields, so their requests are served as before.
//
// POST /fetch takes the "produce" field the same way (handleFetch): the
// records are produced once the fetch is checked, their answer goes in
// Kafka-Produced, sent before the fetch waits, and the records fetched
// follow as the body. A fetch has no group: "commit" in its body is
// refused (400). An rpc client sends its request with the fetch that reads
// its reply.

const (
	// CarryHeader is sent with every answer to POST or GET /consume and
	// GET or POST /fetch, with the value [CarryValue]: it tells a client
	// that this server takes the "produce" and "commit" fields in the
	// consume body, and "produce" in the fetch body. A client must not
	// send "produce" to a server that has not sent this header: other
	// servers ignore it, and the records would be lost. (A commit is only
	// done when [CommittedHeader] says so; a client commits alone
	// otherwise.)
	CarryHeader = "Kafka-Carry"
	// CarryValue is [CarryHeader]'s value.
	CarryValue = "produce"
	// ProducedHeader is set on the answer to a consume or fetch that
	// carried records, once they are written: a JSON array of Metadata
	// objects, one per record in request order, as POST /produce answers.
	// It is present on every answer (error ones included) to a consume or
	// fetch whose records were written, and on no other.
	ProducedHeader = "Kafka-Produced"
	// CommittedHeader is set on the answer to a consume that carried a
	// commit, once the commit was tried: {"result":"Success","status":200},
	// or the error POST /commit would have answered, as
	// {"error": "...", "status": N}. Absent: nothing was committed.
	CommittedHeader = "Kafka-Committed"
	// MaxCarriedRecords is the most records one consume or fetch may
	// carry: their answer travels in a response header (about 60 bytes a
	// record, plus the topic's name), which HTTP clients cap (Go's at
	// 10 MB). A consume or fetch carrying more is refused with 413, nothing
	// written or read: POST /produce takes them, answered in its body.
	MaxCarriedRecords = 1000
)

// Shared header values (net/http only reads them).
var (
	carryValue = []string{CarryValue}
	jsonType   = []string{"application/json"}
)

// consumeBody is the body of POST /consume with the extension's fields:
// Produce holds the records to produce before polling, an array of
// TopicMessage objects (or one object), as POST /produce takes them;
// Commit holds offsets to commit once the instance is joined, before the
// long poll, one {topic, partition, offset} or an array of them, as POST
// /commit takes them with Kafka-Commit-Fenced: true. Absent or null: a
// plain consume.
type consumeBody restwire.CarryingConsumeRequest

// carryNeedsPost refuses a carried produce sent with GET: an HTTP client
// may send a GET again by itself (Go's does, on a reused connection that
// drops after the server took the request; so may proxies), which would
// write the records twice without the client knowing. POST is not
// re-sent that way. Our clients carry with POST only.
func carryNeedsPost(r *http.Request) error {
	if r.Method == http.MethodPost {
		return nil
	}
	return badRequest(`"produce" may only be carried by a POST (an HTTP client may send a GET again by itself, writing the records twice); nothing was written or read`)
}

// carried reports whether the body asked for a produce.
func (b *consumeBody) carried() bool { return present(b.Produce) }

// commits reports whether the body asked for a commit.
func (b *consumeBody) commits() bool { return present(b.Commit) }

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// carry is the state of one consume that carries records or a commit, or
// of one fetch that carries records.
type carry struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	offs    []transport.Offset // to commit; nil: none
	flushed bool               // the headers (status 200) are sent
}

// parseCommit checks the offsets of a carried commit as POST /commit
// checks its body: each named in full, not negative, of a topic the user
// may consume. An error is answered as /commit would, before anything is
// done.
func (c *carry) parseCommit(raw json.RawMessage) error {
	tps, err := decodeOneOrMany[restwire.TopicPartitionOffset](raw, "a topic partition offset")
	if err != nil {
		return err
	}
	c.offs = make([]transport.Offset, 0, len(tps))
	for _, tp := range tps {
		if err := validateTopicPartition(&tp, true); err != nil {
			return err
		}
		if err := mayConsume(c.r, tp.Topic); err != nil {
			return err
		}
		c.offs = append(c.offs, transport.Offset{Topic: tp.Topic, Partition: *tp.Partition, Offset: *tp.Offset})
	}
	return nil
}

// commit commits c.offs on m, fenced (see handleCommit), and sets
// CommittedHeader to the outcome.
func (c *carry) commit(m Member) {
	var err error
	if len(c.offs) > 0 { // none ([]): nothing to do (not /commit's "positions")
		ctx, cancel := c.s.requestContext(c.r, c.s.cfg.maxTimeout)
		err = m.CommitOffsetsFenced(ctx, c.offs...)
		cancel()
	}
	if errors.Is(err, transport.ErrNotAssigned) {
		err = errorf(http.StatusBadRequest, "commit refused, nothing committed: %w (a consume rejoins the group; then records are read again from the committed offsets)", err)
	}
	if err == nil {
		c.w.Header()[CommittedHeader] = []string{string(successBody)}
		return
	}
	status := statusOf(err)
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, `{"error":`...)
	*b = restwire.AppendString(*b, messageOf(err, status), restwire.EscapeServer)
	*b = append(*b, `,"status":`...)
	*b = strconv.AppendInt(*b, int64(status), 10)
	*b = append(*b, '}')
	c.w.Header()[CommittedHeader] = []string{string(*b)}
}

// produce writes the records of raw as POST /produce would (each record
// checked, the user's right to produce to each topic, the size limit, all
// or nothing) and sets [ProducedHeader] to the answer. items, when not
// nil, is raw already decoded by the body's fast decoder (the Records of
// restwire.CarryingConsumeRequest and FetchRequest); nil: raw is decoded
// here. An error is answered as /produce answers it, and the consume or
// fetch then reads nothing. Only a POST may carry records
// (carryNeedsPost).
func (c *carry) produce(r *http.Request, raw json.RawMessage, items []restwire.TopicMessage) error {
	if err := carryNeedsPost(r); err != nil {
		return err
	}
	if items == nil {
		var ok bool
		if items, ok = restwire.DecodeTopicMessages(raw); !ok {
			var err error
			if items, err = decodeOneOrMany[restwire.TopicMessage](raw, "a message"); err != nil {
				return err
			}
		}
	}
	if len(items) > MaxCarriedRecords {
		return errorf(http.StatusRequestEntityTooLarge,
			"a consume or fetch carries at most %d records to produce, got %d: produce them with POST /produce; nothing was written or read",
			MaxCarriedRecords, len(items))
	}
	b, err := c.s.produceItems(r, items, "")
	if err != nil {
		return err
	}
	defer putBuf(b)
	c.w.Header()[ProducedHeader] = []string{string(*b)}
	return nil
}

// ready commits what the consume carries to commit, on m, the instance's
// member, and sends the headers, the produce's answer and the commit's
// among them, before the long poll begins: the client learns both outcomes
// without waiting for records. Called (through consume) when polling
// starts.
func (c *carry) ready(m Member) {
	if c == nil || c.flushed {
		return
	}
	if c.offs != nil {
		c.commit(m)
	}
	c.flush()
}

// flushProduced sends the headers now, without committing, when the
// consume or fetch carried records that are written (Kafka-Produced is
// set): called before it waits (for the poll slot, for a join, for
// records), which may take
// longer than the client waits for the headers. A client that got no
// Kafka-Produced would take its records for unwritten and produce them
// again. The carried commit, if any, is then not done (Kafka-Committed is
// absent): the client commits alone.
func (c *carry) flushProduced() {
	if c == nil || c.flushed || len(c.w.Header()[ProducedHeader]) == 0 {
		return
	}
	c.flush()
}

// flush sends the headers (status 200) at once; the body follows.
func (c *carry) flush() {
	if c == nil || c.flushed {
		return
	}
	c.flushed = true
	h := c.w.Header()
	h["Content-Type"] = jsonType
	c.w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(c.w).Flush()
}

// fail answers err: as any error while the headers are not sent; after
// that, in the body of the 200 answer, as {"error": "...", "status": N}
// (the shape of every error of this API, which a client reads from a
// 2xx body too).
func (c *carry) fail(r *http.Request, err error) error {
	if c == nil || !c.flushed {
		return err
	}
	s := c.s
	status := statusOf(err)
	if status >= 500 && !(status == http.StatusServiceUnavailable && s.closing()) {
		s.log.Error("kafka-rest: backend fault", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	s.errors.Add(1)
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, `{"error":`...)
	*b = restwire.AppendString(*b, messageOf(err, status), restwire.EscapeServer)
	*b = append(*b, `,"status":`...)
	*b = strconv.AppendInt(*b, int64(status), 10)
	*b = append(*b, '}')
	_, _ = c.w.Write(*b)
	return nil
}

// writeRecords answers msgs: as writeRecords does while the headers are
// not sent, else as the body of the answer already begun.
func (c *carry) writeRecords(msgs []transport.Message) {
	s := c.s
	if !c.flushed {
		s.writeRecords(c.w, msgs)
		return
	}
	s.delivered.Add(uint64(len(msgs)))
	s.metrics.consumed(msgs)
	b := getBuf()
	defer putBuf(b)
	*b = append(*b, '[')
	for i := range msgs {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = restwire.AppendConsumed(*b, &msgs[i])
	}
	*b = append(*b, ']')
	_, _ = c.w.Write(*b)
}
