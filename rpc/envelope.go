package rpc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Record headers of the v1 wire envelope. A record carrying none of the
// rpc-* headers is a legacy record, routed by key and topic.
const (
	HeaderVersion        = "rpc-v"
	HeaderID             = "rpc-id"
	HeaderKind           = "rpc-kind"
	HeaderMethod         = "rpc-method"
	HeaderFrom           = "rpc-from"
	HeaderReplyTo        = "rpc-reply-to"
	HeaderReplyPartition = "rpc-reply-partition"
	HeaderCorrelationID  = "rpc-correlation-id"
	HeaderTimeoutMs      = "rpc-timeout-ms"
	HeaderDeadline       = "rpc-deadline"
	HeaderErrorCode      = "rpc-error-code"
	HeaderError          = "rpc-error"
	HeaderContentType    = "content-type"
	HeaderTraceparent    = "traceparent"
)

// ProtocolVersion is the value of the rpc-v header this package writes and
// accepts.
const ProtocolVersion = "1"

// Kind is the rpc-kind header: what a record is.
type Kind string

// The kinds of record.
const (
	KindRequest  Kind = "request"
	KindReply    Kind = "reply"
	KindNotify   Kind = "notify"
	KindProgress Kind = "progress"
)

const contentTypeJSON = "application/json"

// ErrBadEnvelope is wrapped by the error for a record whose rpc-* headers
// are present but malformed.
var ErrBadEnvelope = errors.New("rpc: malformed envelope")

// envelope is the decoded rpc-* headers of one record.
type envelope struct {
	legacy         bool
	id             string
	kind           Kind
	method         string
	from           string
	replyTo        string
	replyPartition int32 // -1: not pinned
	correlationID  string
	timeout        time.Duration // 0: none
	deadline       time.Time     // from rpc-deadline, zero if absent
	errCode        string
	errMsg         string
	contentType    string
	traceparent    string
}

// decodeEnvelope reads and validates the envelope headers of m.
func decodeEnvelope(m *transport.Message) (envelope, error) {
	env := envelope{replyPartition: -1}
	var version string
	rpcHeaders := false
	for i := range m.Headers {
		h := &m.Headers[i]
		if !strings.HasPrefix(h.Key, "rpc-") {
			switch h.Key {
			case HeaderContentType:
				env.contentType = h.Value
			case HeaderTraceparent:
				env.traceparent = h.Value
			}
			continue
		}
		rpcHeaders = true
		switch h.Key {
		case HeaderVersion:
			version = h.Value
		case HeaderID:
			env.id = h.Value
		case HeaderKind:
			env.kind = Kind(h.Value)
		case HeaderMethod:
			env.method = h.Value
		case HeaderFrom:
			env.from = h.Value
		case HeaderReplyTo:
			env.replyTo = h.Value
		case HeaderReplyPartition:
			p, err := strconv.ParseInt(h.Value, 10, 32)
			if err != nil || p < 0 {
				return env, fmt.Errorf("%w: %s %q is not a partition number", ErrBadEnvelope, h.Key, h.Value)
			}
			env.replyPartition = int32(p)
		case HeaderCorrelationID:
			env.correlationID = h.Value
		case HeaderTimeoutMs:
			ms, err := strconv.ParseInt(h.Value, 10, 64)
			if err != nil || ms <= 0 {
				return env, fmt.Errorf("%w: %s %q is not a positive number of milliseconds", ErrBadEnvelope, h.Key, h.Value)
			}
			env.timeout = time.Duration(ms) * time.Millisecond
		case HeaderDeadline:
			ms, err := strconv.ParseInt(h.Value, 10, 64)
			if err != nil || ms <= 0 {
				return env, fmt.Errorf("%w: %s %q is not epoch milliseconds", ErrBadEnvelope, h.Key, h.Value)
			}
			env.deadline = time.UnixMilli(ms)
		case HeaderErrorCode:
			env.errCode = h.Value
		case HeaderError:
			env.errMsg = h.Value
		}
	}
	if !rpcHeaders {
		env.legacy = true
		return env, nil
	}
	if version != ProtocolVersion {
		return env, fmt.Errorf("%w: %s is %q, want %q", ErrBadEnvelope, HeaderVersion, version, ProtocolVersion)
	}
	if env.id == "" {
		return env, fmt.Errorf("%w: no %s", ErrBadEnvelope, HeaderID)
	}
	switch env.kind {
	case KindRequest, KindNotify:
	case KindReply, KindProgress:
		if env.correlationID == "" {
			return env, fmt.Errorf("%w: %s record without %s", ErrBadEnvelope, env.kind, HeaderCorrelationID)
		}
	default:
		return env, fmt.Errorf("%w: unknown %s %q", ErrBadEnvelope, HeaderKind, env.kind)
	}
	return env, nil
}

// deadlineFor returns the deadline a request carries, measured from the
// record's broker timestamp so queueing time counts against it, or the zero
// time when it carries none. skew is the broker's clock minus this
// machine's (as the dedup reader measures it): the timestamp is moved to
// this machine's clock first, so that a broker clock behind or ahead does
// not expire every request or stretch its budget. A timestamp still in the
// future is not trusted: the budget then runs from now.
func (env *envelope) deadlineFor(m *transport.Message, now time.Time, skew time.Duration) time.Time {
	if env.timeout > 0 {
		start := m.Time.Add(-skew)
		if m.Time.IsZero() || start.After(now) {
			start = now
		}
		return start.Add(env.timeout)
	}
	return env.deadline
}

// headerBuilder appends envelope headers to a slice sized for the common
// case, to keep allocations per record at one.
type headerBuilder []transport.Header

func (hb *headerBuilder) add(k, v string) {
	if v != "" {
		*hb = append(*hb, transport.Header{Key: k, Value: v})
	}
}

// replyHeaders is the most headers replyMessage writes, with room for
// markerHeaders more: the dedup marker appends its headers after the
// reply's, in the same array (see markerFor).
const replyHeaders = 9 + markerHeaders

// replyAddr is what a reply or progress record needs of its request's
// envelope: the request's id (the reply's correlation id and key), the
// reply topic and partition, and the trace context to carry.
type replyAddr struct {
	id             string
	replyTo        string
	traceparent    string
	replyPartition int32 // -1: not pinned
}

// replyMessage builds a reply or progress record for the request to
// answers.
func (s *Server) replyMessage(to *replyAddr, kind Kind, payload []byte, herr *Error) transport.Message {
	return s.replyMessageIn(make(headerBuilder, 0, replyHeaders), to, kind, payload, herr)
}

// replyHeaderCount is how many headers replyMessageIn writes for to and
// herr, at most.
func (s *Server) replyHeaderCount(to *replyAddr, herr *Error) int {
	n := 4 // version, id, kind, content type
	for _, set := range [...]bool{s.cfg.name != "", to.id != "", to.traceparent != ""} {
		if set {
			n++
		}
	}
	if herr != nil {
		n += 2 // code and message
	}
	return n
}

// replyMessageIn is replyMessage with its headers written to hb, which has
// room for them (at most 9) and the marker's (see markerFor).
func (s *Server) replyMessageIn(hb headerBuilder, to *replyAddr, kind Kind, payload []byte, herr *Error) transport.Message {
	hb.add(HeaderVersion, ProtocolVersion)
	hb.add(HeaderID, newID())
	hb.add(HeaderKind, string(kind))
	hb.add(HeaderFrom, s.cfg.name)
	hb.add(HeaderCorrelationID, to.id)
	hb.add(HeaderContentType, contentTypeJSON)
	hb.add(HeaderTraceparent, to.traceparent)
	if herr != nil {
		hb.add(HeaderErrorCode, herr.Code().String())
		hb = append(hb, transport.Header{Key: HeaderError, Value: herr.Message()})
		payload = herr.Details()
	}
	// Keyed by the request id: a request's progress notices and reply share
	// a partition, so they arrive in the order they were sent.
	m := transport.Message{Topic: to.replyTo, Key: to.id, Value: payload, Headers: hb}
	if to.replyPartition >= 0 {
		m.Partition, m.ManualPartition = to.replyPartition, true
	}
	return m
}
