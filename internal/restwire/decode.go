package restwire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/kafkarpc/kafkarpc/transport"
)

// The hand-written decoders of the hot bodies: a produce body on the
// server, the answers of consume, fetch and produce on the client. See the
// package doc for what they accept and what they leave to encoding/json.

// DecodeTopicMessages decodes a POST /produce body of one TopicMessage
// object or an array of them, as the server reads it: the fast path of
// decoding the body with encoding/json into a TopicMessage (for an object)
// or a []TopicMessage (for an array). A field given twice takes its last
// value, as with encoding/json, but for headers given twice, which it
// leaves to encoding/json (that decodes the second array into the first's
// elements). Each record's key, value and header values (those that are
// not well known) share one allocation of their size, and its headers
// another: the server's backend keeps records one by one, so nothing of
// one record keeps another's memory alive.
func DecodeTopicMessages(body []byte) (items []TopicMessage, ok bool) {
	d := decoder{b: body}
	d.ws()
	if items, ok = d.topicMessages(); !ok || !d.end() {
		return nil, false
	}
	return items, true
}

// topicMessages decodes the value at d.i, one TopicMessage object or an
// array of them, as DecodeTopicMessages decodes a body of it, and leaves
// d.i after it. d's arena and header scratch are its own while it runs
// (every string is copied out of them), and d holds none afterwards.
func (d *decoder) topicMessages() (items []TopicMessage, ok bool) {
	hp := hdrScratch.Get().(*[]Header)
	d.arena, d.hdrs = make([]byte, 0, 512), (*hp)[:0]
	defer func() {
		hdrs := d.hdrs
		d.arena, d.hdrs, d.pending = nil, nil, d.pending[:0]
		if cap(hdrs) > 1024 {
			return // one unusual body's scratch is not kept
		}
		*hp = hdrs[:0] // kept as grown, without the strings it held
		clear((*hp)[:cap(*hp)])
		hdrScratch.Put(hp)
	}()
	if d.i < len(d.b) && d.b[d.i] == '{' {
		items = make([]TopicMessage, 1)
		if !d.topicMessage(&items[0]) {
			return nil, false
		}
		return items, true
	}
	rest := d.b[d.i:]
	return arrayValue(d, max(1, min(bytes.Count(rest, []byte(`{"topic":`)), len(rest)/minTopicMessageBytes)), d.topicMessage)
}

// minTopicMessageBytes is the size of the smallest TopicMessage counted
// when sizing a produce body's items: {"topic":"","value":""}.
const minTopicMessageBytes = 23

// hdrScratch holds the server decoder's header scratch space (see
// decoder.hdrs) from one body to the next.
var hdrScratch = sync.Pool{New: func() any { s := make([]Header, 0, 16); return &s }}

// arrayOf decodes a body that is one array, each element with elem,
// into a []T made with capacity n.
func arrayOf[T any](d *decoder, n int, elem func(*T) bool) ([]T, bool) {
	out, ok := arrayValue(d, n, elem)
	if !ok || !d.end() {
		return nil, false
	}
	return out, true
}

// arrayValue decodes the array at d.i, each element with elem, into a []T
// made with capacity n, and leaves d.i after it.
func arrayValue[T any](d *decoder, n int, elem func(*T) bool) ([]T, bool) {
	out := make([]T, 0, n)
	ok := d.array(func() bool {
		out = append(out, *new(T))
		return elem(&out[len(out)-1])
	})
	if !ok {
		return nil, false
	}
	return out, true
}

// int32Ptr returns a pointer to v, taken from a slab shared by the body's
// records (one allocation for many of them).
func (d *decoder) int32Ptr(v int32) *int32 {
	if len(d.int32s) == cap(d.int32s) {
		d.int32s = make([]int32, 0, 16)
	}
	d.int32s = append(d.int32s, v)
	return &d.int32s[len(d.int32s)-1]
}

// int64Ptr is int32Ptr for an int64.
func (d *decoder) int64Ptr(v int64) *int64 {
	if len(d.int64s) == cap(d.int64s) {
		d.int64s = make([]int64, 0, 16)
	}
	d.int64s = append(d.int64s, v)
	return &d.int64s[len(d.int64s)-1]
}

// TransportHeaders returns hs as transport headers, sharing their memory:
// the two types have one layout (a conversion between them is allowed, so
// their underlying types are identical). The server hands the headers it
// decoded to its backend this way, without a copy.
func TransportHeaders(hs []Header) []transport.Header {
	if hs == nil {
		return nil
	}
	return unsafe.Slice((*transport.Header)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))[:len(hs):len(hs)]
}

// Header and transport.Header must stay convertible: TransportHeaders
// relies on it.
var _ = transport.Header(Header{})

// topicMessage decodes one TopicMessage object into it. Its key, its
// value and those of its header values that are not constants share one
// allocation of their total size, the value last (its slice capped at its
// end, so that appending to it cannot reach the strings before it).
func (d *decoder) topicMessage(it *TopicMessage) bool {
	base := len(d.arena)
	var key, value []byte
	headers := false
	d.pending = d.pending[:0]
	ok := d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "topic":
			it.Topic, ok = d.topic()
		case "key":
			key, ok = d.strView()
		case "value":
			value, ok = d.strView()
			it.Value.Set = true
		case "partition":
			var p int32
			p, ok = d.int32()
			it.Partition = d.int32Ptr(p)
		case "timestamp":
			var ts int64
			ts, ok = d.int64()
			it.Timestamp = d.int64Ptr(ts)
		case "headers":
			if headers {
				// Given twice: encoding/json decodes the second array into
				// the first's elements, keeping fields the second lacks.
				return false
			}
			headers = true
			d.hdrs = d.hdrs[:0]
			ok = d.array(func() bool {
				k, v, ok := d.header(len(d.hdrs))
				d.hdrs = append(d.hdrs, Header{Key: k, Value: v})
				return ok
			})
		}
		return ok
	})
	if !ok {
		return false
	}
	size := len(key) + len(value)
	for _, p := range d.pending {
		size += len(p.v)
	}
	if size > 0 || it.Value.Set {
		buf := make([]byte, size) // [] is empty, non-nil: a value given as ""
		n := 0
		for _, p := range d.pending {
			d.hdrs[p.idx].Value = bufString(buf, &n, p.v)
		}
		it.Key = bufString(buf, &n, key)
		if it.Value.Set {
			copy(buf[n:], value)
			it.Value.Bytes = buf[n:size:size]
		}
	}
	if headers {
		// [] is an empty, non-nil slice; the scratch is copied out at its
		// size.
		it.Headers = append(make([]Header, 0, len(d.hdrs)), d.hdrs...)
	}
	d.arena = d.arena[:base]
	return true
}

// bufString copies v into buf at *n, advancing *n, and returns it there as
// a string; buf[:*n] is never written again.
func bufString(buf []byte, n *int, v []byte) string {
	if len(v) == 0 {
		return ""
	}
	s := buf[*n : *n+copy(buf[*n:], v)]
	*n += len(v)
	return unsafe.String(unsafe.SliceData(s), len(s))
}

// DecodeMessages decodes the answer of POST /consume or POST /fetch, an
// array of ConsumedMessage objects, into Messages as the client sees them
// (ConsumedMessage.Message): on the fast path when it can, else with
// encoding/json, whose error it returns. It has no budget and ignores
// cancellation: the client uses DecodeMessagesLimited.
func DecodeMessages(data []byte) ([]transport.Message, error) {
	return DecodeMessagesLimited(context.Background(), data, 0)
}

// What DecodeMessagesLimited charges against its budget: the size of the
// structures it allocates for each record and each header, beyond the
// body's bytes.
const (
	RecordCost = int(unsafe.Sizeof(transport.Message{}))
	HeaderCost = int(unsafe.Sizeof(transport.Header{}))
)

// The smallest objects of a consume answer, as the project's server writes
// them: {"topic":"","partition":0,"offset":0,"timestamp":0,"key":"",
// "value":"","headers":[]} and {"key":"","value":""}.
const (
	minRecordBytes = 79
	minHeaderBytes = 21
)

// ErrBudget is wrapped by DecodeMessagesLimited's error when an answer's
// records and headers cost more than its budget.
var ErrBudget = errors.New("restwire: answer decodes to more than its budget")

// ctxCheckEvery is how many records are decoded between checks of the
// context.
const ctxCheckEvery = 256

// DecodeMessagesLimited is DecodeMessages within a budget and a context:
// decoding stops with an error wrapping ErrBudget once the records and
// headers decoded so far cost more than budget bytes (RecordCost and
// HeaderCost each; budget <= 0: no limit), and with ctx's error once ctx
// ends (checked every 256 records). A body of tiny records such as
// [{},{},...] thus cannot turn a capped read into many times its size in
// memory, nor keep a caller past its deadline.
func DecodeMessagesLimited(ctx context.Context, data []byte, budget int) ([]transport.Message, error) {
	// Sized for the records and headers the body seems to hold, as the
	// project's server writes them (a guess: each count is of a byte
	// sequence that JSON strings cannot hold, so a body cannot make it
	// larger than the smallest object of its kind allows), so that a large
	// answer is not copied as its slices grow.
	n := min(bytes.Count(data, []byte(`{"topic":`)), len(data)/minRecordBytes)
	h := min(bytes.Count(data, []byte(`{"key":`)), len(data)/minHeaderBytes)
	d := messageDecoder{decoder: newDecoderArena(data, arenaSize(len(data), n, h)), budget: budget, ctx: ctx}
	if h > 0 {
		d.headers = make([]transport.Header, 0, h)
	}
	if msgs, ok := arrayOf(&d.decoder, max(n, 1), d.limited); ok {
		return msgs, nil
	}
	if d.err != nil {
		return nil, d.err
	}
	return decodeMessagesStd(ctx, data, budget)
}

// arenaSize is the arena of a consume answer of size bytes holding n
// records and h headers (as DecodeMessagesLimited counts them): the body
// less the smallest objects' bytes, which never reach the arena (only the
// contents of keys, values and header values do). A body whose records
// are smaller than the project's server writes them (fields left out) may
// need more: the arena then grows as a slice does, each string and value
// on it keeping the memory it was made on.
func arenaSize(size, n, h int) int {
	return max(0, size-n*minRecordBytes-h*minHeaderBytes)
}

// decodeMessagesStd is the encoding/json path of DecodeMessagesLimited, with
// the same result as json.Unmarshal into a []ConsumedMessage; it decodes
// the array one element at a time to keep to the budget and the context,
// charging each element RecordCost plus HeaderCost for each of its headers.
func decodeMessagesStd(ctx context.Context, data []byte, budget int) ([]transport.Message, error) {
	var ws []ConsumedMessage
	d := decoder{b: data}
	d.ws()
	if !json.Valid(data) || d.i >= len(data) || data[d.i] != '[' {
		// Not one array: encoding/json says why, or decodes null.
		if err := json.Unmarshal(data, &ws); err != nil {
			return nil, err
		}
		return Messages(ws), nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // '['
		return nil, err
	}
	spent := 0
	for n := 1; dec.More(); n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		ws = append(ws, ConsumedMessage{})
		if err := json.Unmarshal(raw, &ws[len(ws)-1]); err != nil {
			return nil, err
		}
		// Charged once decoded, by what it holds: a '{' inside a key or
		// value is not a header. One element costs at most a small multiple
		// of its own bytes, which the read cap bounds.
		spent += RecordCost + HeaderCost*len(ws[len(ws)-1].Headers)
		if budget > 0 && spent > budget {
			return nil, fmt.Errorf("%w: over %d bytes after %d records", ErrBudget, budget, n)
		}
	}
	return Messages(ws), nil
}

// messageDecoder decodes consumed messages; all their headers share one
// backing array.
type messageDecoder struct {
	decoder
	headers []transport.Header

	budget int             // <= 0: none
	spent  int             // charged so far
	n      int             // records begun
	ctx    context.Context // nil: never ends
	err    error           // why decoding stopped, if not the input
}

// decodeMessagesFast is the fast path of DecodeMessages. A field given
// twice gives up (encoding/json's rules for a repeated array are subtle).
func decodeMessagesFast(data []byte) ([]transport.Message, bool) {
	d := messageDecoder{decoder: newDecoder(data)}
	return arrayOf(&d.decoder, 8, d.message)
}

// limited decodes one record into m after charging it, and checking the
// context every ctxCheckEvery records.
func (d *messageDecoder) limited(m *transport.Message) bool {
	d.n++
	if d.ctx != nil && d.n%ctxCheckEvery == 0 {
		if err := d.ctx.Err(); err != nil {
			d.err = err
			return false
		}
	}
	return d.charge(RecordCost) && d.message(m)
}

// charge adds cost to what was spent, reporting false (with d.err set)
// when that passes the budget.
func (d *messageDecoder) charge(cost int) bool {
	d.spent += cost
	if d.budget > 0 && d.spent > d.budget {
		d.err = fmt.Errorf("%w: over %d bytes after %d records", ErrBudget, d.budget, d.n)
		return false
	}
	return true
}

// Fields of a ConsumedMessage, as bits of a set.
const (
	fieldTopic = 1 << iota
	fieldPartition
	fieldOffset
	fieldTimestamp
	fieldKey
	fieldValue
	fieldHeaders
)

// message decodes one ConsumedMessage object into m.
func (d *messageDecoder) message(m *transport.Message) bool {
	var (
		seen  int
		ts    int64
		hdrAt = len(d.headers)
	)
	ok := d.object(func(name []byte) (ok bool) {
		var f int
		switch string(name) {
		case "topic":
			f = fieldTopic
			m.Topic, ok = d.topic()
		case "key":
			f = fieldKey
			m.Key, ok = d.arenaString()
		case "value":
			f = fieldValue
			m.Value, ok = d.str()
		case "partition":
			f = fieldPartition
			m.Partition, ok = d.int32()
		case "offset":
			f = fieldOffset
			m.Offset, ok = d.int64()
		case "timestamp":
			f = fieldTimestamp
			ts, ok = d.int64()
		case "headers":
			f = fieldHeaders
			if d.headers == nil {
				// Room for the rpc envelope's headers of a record or two
				// before the first growth.
				d.headers = make([]transport.Header, 0, 16)
			}
			ok = d.array(func() bool {
				if !d.charge(HeaderCost) {
					return false
				}
				k, v, ok := d.header(len(d.headers))
				d.headers = append(d.headers, transport.Header{Key: k, Value: v})
				return ok
			})
		}
		ok = ok && seen&f == 0 // a known field, once, with a good value
		seen |= f
		return ok
	})
	if !ok {
		return false
	}
	if m.Value == nil {
		m.Value = []byte{} // as []byte(w.Value) of an absent value
	}
	if ts != 0 {
		m.Time = time.UnixMilli(ts)
	}
	if len(d.headers) > hdrAt {
		m.Headers = d.headers[hdrAt:len(d.headers):len(d.headers)]
	}
	return true
}

// DecodeMetadata decodes the answer of POST /produce, an array of Metadata
// objects: on the fast path when it can, else with encoding/json, whose
// error it returns.
func DecodeMetadata(data []byte) ([]Metadata, error) {
	if meta, ok := decodeMetadataFast(data); ok {
		return meta, nil
	}
	var meta []Metadata
	err := json.Unmarshal(data, &meta)
	return meta, err
}

// decodeMetadataFast is the fast path of DecodeMetadata. A field given
// twice takes its last value, as with encoding/json. The slice is made at
// the count of objects the body seems to hold, as the project's server
// writes them (a guess, bounded as DecodeMessagesLimited bounds its own),
// so that a large answer is not copied as the slice grows.
func decodeMetadataFast(data []byte) ([]Metadata, bool) {
	d := decoder{b: data} // short strings only: the arena grows as needed
	n := min(bytes.Count(data, []byte(`{"topic":`)), len(data)/minMetadataBytes)
	return arrayOf(&d, max(n, 1), d.metadata)
}

// minMetadataBytes is the size of the smallest Metadata object counted
// when sizing a produce answer: {"topic":"","partition":0,"offset":0,
// "timestamp":0}.
const minMetadataBytes = 51

// metadata decodes one Metadata object into md.
func (d *decoder) metadata(md *Metadata) bool {
	return d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "topic":
			md.Topic, ok = d.topic()
		case "error":
			md.Error, ok = d.string(true)
		case "partition":
			md.Partition, ok = d.int32()
		case "offset":
			md.Offset, ok = d.int64()
		case "timestamp":
			md.Timestamp, ok = d.int64()
		}
		return ok
	})
}

// DecodeConsumeRequest decodes a consume request body, one ConsumeRequest
// object, as the server reads it: the fast path of encoding/json into a
// ConsumeRequest. A field given twice takes its last value, as with
// encoding/json; a field of another name (encoding/json matches names
// case-insensitively), null, or a timeout that is not a whole number gives
// up.
func DecodeConsumeRequest(body []byte) (ConsumeRequest, bool) {
	req, ok := DecodeCarryingConsumeRequest(body)
	if !ok || req.Produce != nil || req.Commit != nil {
		return ConsumeRequest{}, false // the extension's fields are not ConsumeRequest's
	}
	return req.ConsumeRequest, true
}

// DecodeCarryingConsumeRequest decodes a consume request body that may
// hold the REST server's extension fields "produce" and "commit" (see
// CarryingConsumeRequest), as the server reads it: the fast path of
// encoding/json into a CarryingConsumeRequest, on the terms of
// DecodeConsumeRequest. The extension fields' values are checked to be
// JSON and taken as they are written: they alias body, which the caller
// must keep unchanged while it uses them (encoding/json would copy them).
// "produce" is also decoded, in the same pass, into Records when the fast
// path of DecodeTopicMessages takes it (Records then shares nothing with
// body).
func DecodeCarryingConsumeRequest(body []byte) (req CarryingConsumeRequest, ok bool) {
	d := decoder{b: body}
	d.ws()
	ok = d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "topic":
			req.Topic, ok = d.topic()
		case "topics":
			req.Topics, ok = d.strings(req.Topics[:0])
		case "timeout":
			req.Timeout, ok = d.timeout()
		case "produce":
			req.Produce, req.Records, ok = d.carried()
		case "commit":
			req.Commit, ok = d.rawValue()
		}
		return ok
	})
	if !ok || !d.end() {
		return CarryingConsumeRequest{}, false
	}
	return req, true
}

// DecodeFetchRequest decodes a fetch request body, one FetchRequest object,
// as the server reads it: the fast path of encoding/json into a
// FetchRequest, on the terms of DecodeConsumeRequest; topicPartitionOffsets
// given twice it leaves to encoding/json (see DecodeTopicMessages). The
// extension fields "produce" and "commit" are taken as
// DecodeCarryingConsumeRequest takes them: checked to be JSON, aliasing
// body, which the caller must keep unchanged while it uses them, and
// "produce" decoded into Records when the fast path takes it.
func DecodeFetchRequest(body []byte) (req FetchRequest, ok bool) {
	d := decoder{b: body}
	d.ws()
	ok = d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "topic":
			req.Topic, ok = d.topic()
		case "partition":
			var p int32
			p, ok = d.int32()
			req.Partition = &p
		case "offset":
			var o int64
			o, ok = d.int64()
			req.Offset = &o
		case "topicPartitionOffsets":
			if req.TopicPartitionOffsets != nil {
				// Given twice: encoding/json decodes the second array into
				// the first's elements, keeping fields the second lacks.
				return false
			}
			req.TopicPartitionOffsets = make([]TopicPartitionOffset, 0, 1) // [] is not nil
			ok = d.array(func() bool {
				req.TopicPartitionOffsets = append(req.TopicPartitionOffsets, TopicPartitionOffset{})
				return d.topicPartitionOffset(&req.TopicPartitionOffsets[len(req.TopicPartitionOffsets)-1])
			})
		case "timeout":
			req.Timeout, ok = d.timeout()
		case "produce":
			req.Produce, req.Records, ok = d.carried()
		case "commit":
			req.Commit, ok = d.rawValue()
		}
		return ok
	})
	if !ok || !d.end() {
		return FetchRequest{}, false
	}
	return req, true
}

// carried takes the value of a consume or fetch body's "produce" field:
// raw, the JSON as written (aliasing the body), and records, the value
// decoded as DecodeTopicMessages decodes a body of it, or nil when it
// cannot (null, or a shape it leaves to encoding/json): the server then
// decodes raw as before, with encoding/json's errors. One pass over the
// records instead of a check of the JSON and then a decode.
func (d *decoder) carried() (raw json.RawMessage, records []TopicMessage, ok bool) {
	start := d.i
	if records, ok = d.topicMessages(); ok {
		return d.b[start:d.i:d.i], records, true
	}
	d.i = start
	raw, ok = d.rawValue()
	return raw, nil, ok
}

// topicPartitionOffset decodes one {"topic","partition","offset"} object.
// Its partition and offset point into the decoder's slabs.
func (d *decoder) topicPartitionOffset(tp *TopicPartitionOffset) bool {
	return d.object(func(name []byte) (ok bool) {
		switch string(name) {
		case "topic":
			tp.Topic, ok = d.topic()
		case "partition":
			var p int32
			p, ok = d.int32()
			tp.Partition = d.int32Ptr(p)
		case "offset":
			var o int64
			o, ok = d.int64()
			tp.Offset = d.int64Ptr(o)
		}
		return ok
	})
}

// strings decodes an array of strings, appending to into, interning each.
// encoding/json decodes [] into an empty, non-nil slice.
func (d *decoder) strings(into []string) ([]string, bool) {
	if into == nil {
		into = make([]string, 0, 1)
	}
	ok := d.array(func() bool {
		s, ok := d.topic()
		into = append(into, s)
		return ok
	})
	return into, ok
}

// timeout decodes a whole-number timeout into a new float64.
func (d *decoder) timeout() (*float64, bool) {
	n, ok := d.int(-1<<53, 1<<53) // exact as a float64
	if !ok {
		return nil, false
	}
	f := float64(n)
	return &f, true
}
