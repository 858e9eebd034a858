package restserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/restwire"
	"github.com/kafkarpc/kafkarpc/transport"
)

// handleProducePath serves GET /produce/{topic}/{message}?key=: one record,
// answered with one Metadata object.
func (s *Server) handleProducePath(w http.ResponseWriter, r *http.Request, seg []string) error {
	discardBody(r)
	if err := mayProduce(r, seg[1]); err != nil {
		return err
	}
	msg := transport.Message{Topic: seg[1], Key: r.URL.Query().Get("key"), Value: []byte(seg[2])}
	return s.produceOne(w, r, msg)
}

// handleProduce serves GET|POST /produce and /produce/{topic} with a body of
// one message or an array of them, answered with an array of Metadata in
// request order (an array of one for a single object, §3.3). On
// /produce/{topic} the path names the topic and a topic field in the body is
// ignored.
func (s *Server) handleProduce(w http.ResponseWriter, r *http.Request, seg []string) error {
	pooled, err := s.readPooledBody(w, r)
	if err != nil {
		return err
	}
	body := *pooled
	items, ok := restwire.DecodeTopicMessages(body)
	if !ok {
		items, err = decodeOneOrMany[restwire.TopicMessage](body, "a message")
	}
	putBuf(pooled) // the items hold copies of what they need of it
	if err != nil {
		return err
	}
	if len(items) == 0 {
		return badRequest("no message to produce: send a message object or a non-empty array of them")
	}
	pathTopic := ""
	if len(seg) == 2 {
		pathTopic = seg[1]
	}
	b, err := s.produceItems(r, items, pathTopic)
	if err != nil {
		return err
	}
	defer putBuf(b)
	writeJSON(w, http.StatusOK, *b)
	return nil
}

// produceItems writes items as POST /produce does: each made a record
// (pathTopic, when not empty, is the topic of every one) and checked, the
// user's right to produce to each topic checked, then all of them
// produced or none. It returns the answer, the JSON array of the records'
// metadata, in a pooled buffer the caller puts back (putBuf). No items
// produce nothing and answer [].
func (s *Server) produceItems(r *http.Request, items []restwire.TopicMessage, pathTopic string) (*[]byte, error) {
	msgs := make([]transport.Message, len(items))
	own, owned := s.backend.(ownedProducer)
	for i := range items {
		if err := s.toMessage(&msgs[i], &items[i], pathTopic, i, len(items)); err != nil {
			return nil, err
		}
	}
	for i := range msgs {
		if err := mayProduce(r, msgs[i].Topic); err != nil {
			return nil, err
		}
	}
	var out []transport.Message
	if len(msgs) > 0 {
		ctx, cancel := s.produceContext(r)
		defer cancel()
		var err error
		if owned {
			// Every value and header slice was made for this request (the
			// decoder gives each record's value, with its key and header
			// values, an allocation of its own): the backend may keep
			// them instead of copying.
			out, err = own.ProduceOwned(ctx, msgs...)
		} else {
			out, err = s.backend.Produce(ctx, msgs...)
		}
		if err != nil {
			return nil, err
		}
	}
	s.produced.Add(uint64(len(out)))
	s.metrics.produced(out)
	b := getBuf()
	*b = append(*b, '[')
	for i := range out {
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = restwire.AppendMetadata(*b, &out[i])
	}
	*b = append(*b, ']')
	return b, nil
}

// ownedProducer is a Backend that can keep handed-over records instead of
// copying them, as the embedded broker can (memory.Broker.ProduceOwned):
// the caller never changes their Value or Headers again.
type ownedProducer interface {
	ProduceOwned(ctx context.Context, msgs ...transport.Message) ([]transport.Message, error)
}

// instantProducer is a Backend whose Produce and Fetch never wait: they
// ask their context's Err and return, as the embedded broker's do. They
// get the request's context as it is (see produceContext).
type instantProducer interface {
	producesAtOnce()
}

// noCancel is the CancelFunc of a context that needs none.
func noCancel() {}

// produceContext is the context of a produce on the backend for r: the
// request's context bounded by maxTimeout (requestContext); on a backend
// whose produce never waits, the request's context alone: a timer there
// would bound nothing, and costs a timer, a context and a channel per
// produce.
func (s *Server) produceContext(r *http.Request) (context.Context, context.CancelFunc) {
	if s.instant() {
		return r.Context(), noCancel
	}
	return s.requestContext(r, s.cfg.maxTimeout)
}

// instant reports whether the backend is an instantProducer.
func (s *Server) instant() bool {
	_, ok := s.backend.(instantProducer)
	return ok
}

// toMessage validates item (number i of n) and fills m. m's headers share
// item's memory, which was made for this record alone (by the decoder or
// encoding/json), so a retained record pins no other record's headers.
func (s *Server) toMessage(m *transport.Message, it *restwire.TopicMessage, pathTopic string, i, n int) error {
	// where prefixes an error with the message's index, when there are
	// several; made only for an error.
	where := func() string {
		if n > 1 {
			return "message " + strconv.Itoa(i) + ": "
		}
		return ""
	}
	m.Topic = it.Topic
	if pathTopic != "" {
		m.Topic = pathTopic
	}
	if m.Topic == "" {
		return badRequest(where() + "topic is required")
	}
	if !it.Value.Set {
		return badRequest(where() + "value is required")
	}
	m.Key = it.Key
	m.Value = it.Value.Bytes
	if it.Partition != nil {
		if *it.Partition < 0 {
			return badRequest(fmt.Sprintf("%spartition must not be negative, got %d", where(), *it.Partition))
		}
		m.Partition = *it.Partition
		m.ManualPartition = true
	}
	if it.Timestamp != nil {
		if *it.Timestamp < 0 {
			return badRequest(fmt.Sprintf("%stimestamp must be epoch milliseconds, got %d", where(), *it.Timestamp))
		}
		if *it.Timestamp > 0 {
			m.Time = time.UnixMilli(*it.Timestamp)
		}
	}
	if len(it.Headers) > 0 {
		m.Headers = restwire.TransportHeaders(it.Headers)
	}
	return s.checkSize(m, where)
}

// checkSize refuses a record over the message limit; where, if not nil,
// gives the error's prefix.
func (s *Server) checkSize(m *transport.Message, where func() string) error {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	if n > s.cfg.maxMessageBytes {
		prefix := ""
		if where != nil {
			prefix = where()
		}
		return errorf(http.StatusRequestEntityTooLarge, "%smessage is %d bytes, over the limit of %d bytes: %w",
			prefix, n, s.cfg.maxMessageBytes, transport.ErrMessageTooLarge)
	}
	return nil
}

// produceOne appends one record and answers one Metadata object.
func (s *Server) produceOne(w http.ResponseWriter, r *http.Request, msg transport.Message) error {
	if err := s.checkSize(&msg, nil); err != nil {
		return err
	}
	ctx, cancel := s.produceContext(r)
	defer cancel()
	out, err := s.backend.Produce(ctx, msg)
	if err != nil {
		return err
	}
	if len(out) != 1 {
		return fmt.Errorf("backend returned %d records for 1 produced", len(out))
	}
	s.produced.Add(1)
	s.metrics.produced(out)
	b := getBuf()
	defer putBuf(b)
	*b = restwire.AppendMetadata(*b, &out[0])
	writeJSON(w, http.StatusOK, *b)
	return nil
}

// handleWebhook serves GET|POST /webhook?topic=T: the raw body becomes the
// record's value and every request header that is not a standard HTTP
// header becomes a record header (sorted by name, values in order). The
// answer is one Metadata object (the response is undocumented upstream).
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, _ []string) error {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		return badRequest("the topic query parameter is required: /webhook?topic=T")
	}
	if err := mayProduce(r, topic); err != nil {
		discardBody(r)
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	msg := transport.Message{Topic: topic, Value: body}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		if !standardHeader(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			msg.Headers = append(msg.Headers, transport.Header{Key: name, Value: v})
		}
	}
	return s.produceOne(w, r, msg)
}

// standardHeaders are the request headers /webhook does not copy into the
// record: HTTP's own (RFC 9110/9111/9113 and common practice), proxy and
// browser headers. Names are in canonical form.
var standardHeaders = map[string]bool{
	"Accept": true, "Accept-Charset": true, "Accept-Encoding": true, "Accept-Language": true,
	"Accept-Datetime": true, "Access-Control-Request-Method": true, "Access-Control-Request-Headers": true,
	"Authorization": true, "Cache-Control": true, "Connection": true, "Content-Encoding": true,
	"Content-Length": true, "Content-Md5": true, "Content-Type": true, "Cookie": true, "Date": true,
	"Dnt": true, "Expect": true, "Forwarded": true, "From": true, "Host": true, "Http2-Settings": true,
	"If-Match": true, "If-Modified-Since": true, "If-None-Match": true, "If-Range": true,
	"If-Unmodified-Since": true, "Keep-Alive": true, "Max-Forwards": true, "Origin": true,
	"Pragma": true, "Prefer": true, "Priority": true, "Range": true, "Referer": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Upgrade-Insecure-Requests": true,
	"User-Agent": true, "Via": true, "Warning": true, "X-Forwarded-For": true,
	"X-Forwarded-Host": true, "X-Forwarded-Port": true, "X-Forwarded-Proto": true, "X-Real-Ip": true,
}

func standardHeader(name string) bool {
	return standardHeaders[name] || strings.HasPrefix(name, "Sec-") || strings.HasPrefix(name, "Proxy-")
}
