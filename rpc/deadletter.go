package rpc

import (
	"errors"
	"strconv"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Headers a Server adds to a dead-lettered record, next to its own.
const (
	HeaderDLQReason    = "dlq-reason"
	HeaderDLQError     = "dlq-error"
	HeaderDLQCode      = "dlq-error-code"
	HeaderDLQTopic     = "dlq-topic"
	HeaderDLQPartition = "dlq-partition"
	HeaderDLQOffset    = "dlq-offset"
	HeaderDLQTime      = "dlq-time"
)

// DeadLetterSuffix is appended to a topic's name to name its dead-letter
// topic: records of "reports" that cannot be served go to "reports.dlq".
const DeadLetterSuffix = ".dlq"

// Reasons in the dlq-reason header.
const (
	reasonOversize         = "oversize"
	reasonBadEnvelope      = "bad_envelope"
	reasonNotARequest      = "not_a_request"
	reasonUndecodable      = "undecodable"
	reasonUnknownRoute     = "unknown_route"
	reasonRetriesExhausted = "retries_exhausted"
)

// errUndecodable marks a payload that does not decode into the handler's
// type: the record is poison, not a handler failure.
var errUndecodable = errors.New("rpc: undecodable payload")

// Retryable marks err as transient: the Server runs the handler again with
// backoff (WithRetry), and after the last attempt dead-letters the request
// and replies with err's code. Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func isRetryable(err error) bool {
	var re *retryableError
	return errors.As(err, &re)
}

// deadLetter writes a record that cannot be served to "<topic>.dlq", with
// headers giving the reason and its origin, and logs one line saying what
// happened. It reports whether the dead letter was written (or refused for
// good, so as not to stall the partition): false only when a hard stop came
// first.
func (r *serveRun) deadLetter(d *delivery, reason string, e *Error) bool {
	m := &d.req.Message
	dlq := transport.Message{
		Topic:   m.Topic + DeadLetterSuffix,
		Key:     m.Key,
		Value:   m.Value,
		Headers: make([]transport.Header, 0, len(m.Headers)+7),
	}
	dlq.Headers = append(dlq.Headers, m.Headers...)
	dlq.Headers = append(dlq.Headers,
		transport.Header{Key: HeaderDLQReason, Value: reason},
		transport.Header{Key: HeaderDLQCode, Value: e.Code().String()},
		transport.Header{Key: HeaderDLQError, Value: e.Message()},
		transport.Header{Key: HeaderDLQTopic, Value: m.Topic},
		transport.Header{Key: HeaderDLQPartition, Value: strconv.Itoa(int(m.Partition))},
		transport.Header{Key: HeaderDLQOffset, Value: strconv.FormatInt(m.Offset, 10)},
		transport.Header{Key: HeaderDLQTime, Value: strconv.FormatInt(time.Now().UnixMilli(), 10)},
	)
	ok, refused := r.produce("dead letter", d.to.id, dlq)
	// Said once it is written: produce said it already when it was refused
	// ("dead letter lost") or cut short by the stop.
	if ok && refused == nil {
		r.s.deadLettered.Add(1)
		if o := r.s.cfg.observer; o != nil {
			o.Counted(Event{Kind: EventDeadLetter, Topic: m.Topic, Reason: reason})
		}
		r.s.log.Warn("rpc: record dead-lettered", "reason", reason, "topic", m.Topic, "partition", m.Partition,
			"offset", m.Offset, "id", d.to.id, "dlq", dlq.Topic, "replied", d.to.replyTo != "", "err", e.Message())
	}
	return ok
}
