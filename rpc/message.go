package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kafkarpc/kafkarpc/internal/jsonplan"
	"github.com/kafkarpc/kafkarpc/transport"
)

// Request is one request, notification or legacy record as a handler sees
// it: the record as read (its Topic, Key, Value, Headers, offsets and time,
// through the embedded transport.Message) and what its envelope says. A
// handler must not keep Value or Headers after it returns: they may share
// memory with the transport.
type Request struct {
	// Message is the record as read from the transport. Its Value is the
	// payload, JSON by convention (see Payload and Decode).
	transport.Message
	// Method is the rpc-method sub-route, empty when none.
	Method string
	// From is the sender's service name (rpc-from). For a legacy record it
	// is the record key: the producer's name in the Laravel article's
	// scheme.
	From string
	// ID is the request id (rpc-id); empty for a legacy record.
	ID string
	// Kind is KindRequest or KindNotify; empty for a legacy record.
	Kind Kind
	// Deadline is when the caller stops waiting; zero when none travelled.
	Deadline time.Time
	// Legacy reports a record without rpc-* headers.
	Legacy bool
}

// Payload returns the record value, JSON by convention.
func (r *Request) Payload() json.RawMessage { return r.Value }

// Decode unmarshals the payload into v. A payload that does not decode
// gives an *Error with CodeInvalidArgument.
func (r *Request) Decode(v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return r.decodeErr(err)
	}
	return nil
}

// decodeErr is the error of a payload that does not decode: its Serve
// dead-letters the request as undecodable.
func (r *Request) decodeErr(err error) error {
	return &Error{code: CodeInvalidArgument, message: "decode " + r.Topic + " request: " + err.Error(), cause: errors.Join(errUndecodable, err)}
}

// Reply is a reply or progress notice as a caller sees it: the record as
// read (through the embedded transport.Message; its Value is the payload)
// and what its envelope says. A Reply returned by Client.Call is the
// caller's own (its Value and Headers are copies). One given to a progress
// callback or a NoticeHandler is read-only: its Value and Headers share
// memory with the transport and, on the embedded broker, with the reply the
// server stores in its dedup window and marker (copy them to change them).
type Reply struct {
	// Message is the reply record as read from the transport.
	transport.Message
	// ID is the reply record's own id.
	ID string
	// CorrelationID is the id of the request answered.
	CorrelationID string
	// Kind is KindReply or KindProgress.
	Kind Kind
	// From is the replying service's name.
	From string
	// Err is the handler's error for a failed request delivered to an
	// OnNotice handler; Call returns it as its error instead.
	Err *Error
}

// Payload returns the JSON result (or progress value).
func (r *Reply) Payload() json.RawMessage { return r.Value }

// Decode unmarshals the payload into v.
func (r *Reply) Decode(v any) error {
	if err := json.Unmarshal(r.Value, v); err != nil {
		return r.decodeErr(err)
	}
	return nil
}

// decodeErr is the error of a reply payload that does not decode.
func (r *Reply) decodeErr(err error) error {
	return Errorf(CodeInvalidArgument, "decode reply %s: %w", r.CorrelationID, err)
}

func replyFrom(m *transport.Message, env *envelope) *Reply {
	r := new(Reply)
	r.fill(m, env)
	return r
}

// fill sets r to the reply or progress notice m, whose envelope is env.
func (r *Reply) fill(m *transport.Message, env *envelope) {
	*r = Reply{
		ID:            env.id,
		CorrelationID: env.correlationID,
		Kind:          env.kind,
		From:          env.from,
		Message:       *m,
	}
	if env.errCode != "" || env.errMsg != "" { // an error without a code is still an error
		code, err := ParseCode(env.errCode)
		if err != nil {
			code = CodeUnknown
		}
		e := &Error{code: validCode(code), message: env.errMsg}
		if code == CodeDeadlineExceeded {
			e.cause = ErrTimeout // the server gave up at the caller's deadline
		}
		if len(m.Value) > 0 && string(m.Value) != "null" {
			e.details = m.Value
		}
		r.Err = e
	}
}

// marshalPayload encodes v as JSON; []byte and json.RawMessage are sent as
// they are and must hold JSON.
func marshalPayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case json.RawMessage:
		if !json.Valid(p) {
			return nil, Errorf(CodeInvalidArgument, "payload is not valid JSON")
		}
		return p, nil
	case []byte:
		if !json.Valid(p) {
			return nil, Errorf(CodeInvalidArgument, "payload is not valid JSON")
		}
		return p, nil
	}
	// A plain struct (or a pointer to one) is encoded by its type's plan:
	// json.Marshal's bytes, without its reflection walk. Anything else,
	// and a value json.Marshal would refuse, is json.Marshal's.
	if b, ok := jsonplan.Marshal(v); ok {
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "encode payload: %w", err)
	}
	return b, nil
}

func (r *Request) String() string {
	if r.Legacy {
		return fmt.Sprintf("legacy %s:%s@%d/%d", r.Key, r.Topic, r.Message.Partition, r.Message.Offset)
	}
	return fmt.Sprintf("%s %s/%s id=%s", r.Kind, r.Topic, r.Method, r.ID)
}
